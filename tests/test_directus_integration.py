"""The Directus source against a real Directus server started by the fixtures: prompt sets,
evaluation sets, and a schema without any optional field."""

import asyncio
import time

import anyio
import httpx
import pytest

from devserver.directus import DirectusServer
from devserver.sample_data import (
    CRITERIA,
    MANY_CRITERIA,
    SCORING_GUIDELINES,
    SEQUENCES,
    version_payload,
)
from storybench_prompts import (
    PROMPT_SETS,
    DirectusAuthenticationError,
    DirectusConnectionError,
    DirectusNotFoundError,
    DirectusSource,
    DirectusTimeoutError,
    DirectusTimeouts,
    InMemoryMirror,
    RetryPolicy,
)
from storybench_prompts.content.kinds import EVALUATION_SETS
from storybench_prompts.ops.checks import run_checks
from storybench_prompts.ops.sync import sync_versions

pytestmark = [pytest.mark.anyio, pytest.mark.directus]

QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


async def test_latest_is_the_highest_published_version(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as src:
        assert await src.test_connection()
        latest = await src.latest()
        versions = await src.versions()
    assert latest.version == 3  # 4 is a draft, 5 archived
    assert [v.version for v in versions] == [1, 2, 3]
    assert latest.provenance.source == "directus"
    assert list(latest.sequences) == list(SEQUENCES)
    assert all(len(prompts) == 3 for prompts in latest.sequences.values())


async def test_given_version_excludes_drafts_and_archived(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as src:
        v2 = await src.get(2)
        with pytest.raises(DirectusNotFoundError):
            await src.get(4)  # draft
        with pytest.raises(DirectusNotFoundError):
            await src.get(5)  # archived
        with pytest.raises(DirectusNotFoundError) as info:
            await src.get(999)
    assert "UnfinishedDraft" not in v2.sequences
    assert "Draft Prompt" not in [p.name for p in v2.sequences["FilmNarrative"]]
    assert info.value.version == 999


async def test_prompts_follow_order_in_sequence_not_directus_order(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as src:
        ps = await src.get(1)
    # Directus returns junction order (seeded in reverse): prove it, so the test means something.
    raw = httpx.get(
        f"{directus.url}/items/prompt_set_versions",
        params={
            "filter[version_number][_eq]": "1",
            "fields": "sequences_in_set.prompt_sequences_id.prompts_in_sequence.prompts_id.name",
        },
        headers={"Authorization": f"Bearer {directus.readonly_token}"},
    ).json()["data"][0]
    returned = [
        j["prompts_id"]["name"]
        for j in raw["sequences_in_set"][0]["prompt_sequences_id"]["prompts_in_sequence"]
    ]
    expected = [name for name, _ in SEQUENCES["FilmNarrative"]]
    assert returned == expected[::-1]
    assert [p.name for p in ps.sequences["FilmNarrative"]] == expected


async def test_bad_token_is_typed_and_token_free(directus):
    token = "definitely-wrong-token-123"
    async with DirectusSource(directus.url, token, kind=PROMPT_SETS) as src:
        with pytest.raises(DirectusAuthenticationError) as info:
            await src.latest()
    assert info.value.status == 401
    assert info.value.code == "INVALID_CREDENTIALS"
    assert token not in str(info.value)
    assert token not in repr(info.value)


async def test_large_sets_are_not_cut_at_100_items(own_directus):
    big_sequence = {f"P{i:03d}": "" for i in range(150)}
    sequences = {"Long": [(name, f"text {name}") for name in big_sequence]}
    sequences |= {f"Extra{i:03d}": [("only", "x")] for i in range(104)}
    own_directus.create_version(version_payload(50, sequences=sequences))
    async with DirectusSource(
        own_directus.url, own_directus.readonly_token, kind=PROMPT_SETS
    ) as src:
        ps = await src.get(50)
    assert len(ps.sequences["Long"]) == 150
    assert len(ps.sequences) == 105
    assert [p.name for p in ps.sequences["Long"]] == sorted(big_sequence)


async def test_stopped_server_is_a_connection_error(own_directus):
    own_directus.kill()
    async with DirectusSource(
        own_directus.url, own_directus.readonly_token, retry=QUICK, kind=PROMPT_SETS
    ) as src:
        with pytest.raises(DirectusConnectionError):
            await src.latest()


async def test_stalled_server_times_out_within_the_read_timeout(own_directus):
    timeouts = DirectusTimeouts(connect=1.0, read=1.0)
    async with DirectusSource(
        own_directus.url,
        own_directus.readonly_token,
        timeouts=timeouts,
        retry=QUICK,
        kind=PROMPT_SETS,
    ) as src:
        assert (await src.get(1)).version == 1
        with own_directus.paused():
            started = time.monotonic()
            with pytest.raises(DirectusTimeoutError):
                await src.get(2)
            elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 2.5
        assert (await src.get(2)).version == 2  # answers again once resumed


# -- evaluation sets ----------------------------------------------------------------------


def storybench_criterion(key: str, title: str, maximum: int) -> dict:
    """A criterion as storybench's documented conversion writes it: keyed by the raw name,
    the title-cased name, the scale as [1, n], description and instructions as stored."""
    description, instructions = CRITERIA[key]
    return {
        "name": title,
        "description": description,
        "scale": [1, maximum],
        "criteria": instructions,
    }


# Written out by hand from the rules, not computed by the code under test.
EXPECTED_V3_CRITERIA = {
    "creativity": storybench_criterion("creativity", "Creativity", 5),
    "coherence": storybench_criterion("coherence", "Coherence", 5),
    "character_depth": storybench_criterion("character_depth", "Character Depth", 5),
    "dialogue_quality": storybench_criterion("dialogue_quality", "Dialogue Quality", 5),
    "visual_imagery": storybench_criterion("visual_imagery", "Visual Imagery", 5),
    "conceptual_depth": storybench_criterion("conceptual_depth", "Conceptual Depth", 5),
    "adaptability": storybench_criterion("adaptability", "Adaptability", 10),
}
EXPECTED_V1_CRITERIA = {
    key: value
    for key, value in EXPECTED_V3_CRITERIA.items()
    if key not in {"conceptual_depth", "adaptability"}
}


async def test_evaluation_sets_convert_as_storybench_does(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=EVALUATION_SETS) as src:
        listed = {info.version: info for info in await src.versions()}
        latest = await src.latest()
        v1 = await src.get(1)
        v3 = await src.get(3)
    assert sorted(listed) == [1, 2, 3]  # 4 is a draft, 5 archived
    assert listed[1].published_at is not None  # read from storybench's `pubslihed_at`
    assert latest.version == 3
    assert latest.config_hash == v3.config_hash
    flat = v3.to_storybench()
    assert flat["criteria"] == EXPECTED_V3_CRITERIA
    assert list(flat["criteria"]) == list(EXPECTED_V3_CRITERIA)  # junction order kept
    # The first scoring item's guidelines; the second is ignored.
    assert flat["scoring_guidelines"] == SCORING_GUIDELINES["strict"]
    assert flat["version"] == 3
    assert flat["version_name"] == "Evaluation criteria v3"
    assert flat["directus_id"] == listed[3].directus_id
    assert v1.to_storybench()["criteria"] == EXPECTED_V1_CRITERIA
    assert v1.scoring_guidelines == SCORING_GUIDELINES["standard"]
    assert "\n\n" in v3.criteria["coherence"].criteria  # multi-paragraph text arrives whole


async def test_draft_and_archived_evaluation_sets_are_not_served(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=EVALUATION_SETS) as src:
        for version in (4, 5, 999):
            with pytest.raises(DirectusNotFoundError) as info:
                await src.get(version)
            assert f"evaluation set version {version}" in str(info.value)


async def test_an_evaluation_set_over_100_criteria_arrives_whole(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as prompts:
        v2 = await prompts.for_kind(EVALUATION_SETS).get(2)
        assert (await prompts.get(2)).version == 2  # the sibling shares the connection
    assert MANY_CRITERIA > 100
    assert list(v2.criteria) == [f"aspect_{i:03d}" for i in range(MANY_CRITERIA)]
    assert v2.criteria["aspect_117"].name == "Aspect 117"
    assert v2.criteria["aspect_117"].scale == (1, 8)
    assert v2.scoring_guidelines == ""  # no scoring item


# -- a Directus whose schema has only the fields the content needs --------------------------


async def test_a_minimal_schema_lists_fetches_syncs_and_checks(minimal_directus):
    server = minimal_directus
    prompt_mirror, evaluation_mirror = (
        InMemoryMirror(kind=PROMPT_SETS),
        InMemoryMirror(kind=EVALUATION_SETS),
    )
    async with DirectusSource(server.url, server.readonly_token, kind=PROMPT_SETS) as prompts:
        evaluations = prompts.for_kind(EVALUATION_SETS)
        prompt_infos = await prompts.versions()
        evaluation_infos = await evaluations.versions()
        v1 = await prompts.get(1)
        latest_evaluation = await evaluations.latest()
        prompt_sync = await sync_versions(prompts, prompt_mirror)
        evaluation_sync = await sync_versions(evaluations, evaluation_mirror)
        checks = await run_checks([(prompts, prompt_mirror), (evaluations, evaluation_mirror)])

    assert [i.version for i in prompt_infos] == [1, 2, 3]
    assert [i.version for i in evaluation_infos] == [1, 2, 3]
    assert all(i.version_name is None and i.created_at is None for i in prompt_infos)
    assert all(i.published_at is None for i in evaluation_infos)

    assert list(v1.sequences) == list(SEQUENCES)
    assert [(p.name, p.text) for p in v1.sequences["FilmNarrative"]] == [
        (name, f"{text} (v1)") for name, text in SEQUENCES["FilmNarrative"]
    ]
    assert v1.version_name is None
    assert v1.created_at is None

    assert latest_evaluation.version == 3
    assert latest_evaluation.version_name is None
    # No description field: the description is "", as storybench would have None.
    assert {c.description for c in latest_evaluation.criteria.values()} == {""}
    assert latest_evaluation.criteria["adaptability"].scale == (1, 10)
    assert latest_evaluation.scoring_guidelines == SCORING_GUIDELINES["strict"]

    assert [(r.version, r.outcome) for r in prompt_sync] == [(1, "new"), (2, "new"), (3, "new")]
    assert [(r.version, r.outcome) for r in evaluation_sync] == [
        (1, "new"),
        (2, "new"),
        (3, "new"),
    ]
    assert await evaluation_mirror.stored_hash(2) == evaluation_sync[1].config_hash

    assert all(r.ok for r in checks), checks
    schema = {r.kind: r for r in checks if r.name == "schema"}
    assert set(schema) == {"prompts", "evaluations"}
    prompt_notes = " ".join(schema["prompts"].notes)
    evaluation_notes = " ".join(schema["evaluations"].notes)
    assert "prompt_set_versions has no optional version_name, description, date_created" in (
        prompt_notes
    )
    assert "prompts has no optional guidance_notes" in prompt_notes
    assert "pubslihed_at or published_at" in evaluation_notes
    assert "evaluation_criteria has no optional description" in evaluation_notes


# -- the realtime switch of the local server ------------------------------------------------


async def websocket_handshake_status(url: str) -> str:
    """The status line Directus answers a WebSocket upgrade of ``/websocket`` with."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            (
                "GET /websocket HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                # A key must be 16 random bytes in base64 (RFC 6455), or Directus answers 400.
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
    finally:
        writer.close()


async def test_realtime_is_off_by_default_and_on_when_asked(directus, directus_template):
    assert " 101 " not in await websocket_handshake_status(directus.url)
    server = await anyio.to_thread.run_sync(
        lambda: DirectusServer.start_from(directus_template, realtime=True)
    )
    try:
        assert server.env_overrides["WEBSOCKETS_ENABLED"] == "true"
        assert " 101 " in await websocket_handshake_status(server.url)
    finally:
        await anyio.to_thread.run_sync(server.stop)


async def test_a_directus_with_a_query_limit_max_serves_and_syncs_whole_sets(
    directus, capped_directus
):
    """``QUERY_LIMIT_MAX`` cuts ``limit=-1`` without a word: the listing is read by offset
    and the nested lists ask for a number, so every set is the one an uncapped Directus
    serves, and a sync withdraws nothing."""
    async with (
        DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as whole,
        DirectusSource(capped_directus.url, capped_directus.readonly_token, kind=PROMPT_SETS) as (
            capped
        ),
    ):
        for kind in (PROMPT_SETS, EVALUATION_SETS):
            want, got = whole.for_kind(kind), capped.for_kind(kind)
            assert [i.version for i in await got.versions()] == [1, 2, 3]
            expected = {v: (await want.get(v)).config_hash for v in (1, 2, 3)}
            assert {v: (await got.get(v)).config_hash for v in (1, 2, 3)} == expected
            assert (await got.latest()).config_hash == expected[3]
            many = await got.get_many([1, 2, 3])
            assert {v: c.config_hash for v, c in many.items()} == expected
            mirror = InMemoryMirror(kind=kind)
            results = await sync_versions(got, mirror)
            assert sorted((r.version, r.outcome) for r in results) == [
                (1, "new"),
                (2, "new"),
                (3, "new"),
            ]
            assert {v: await mirror.stored_hash(v) for v in (1, 2, 3)} == expected
        v1 = await capped.get(1)
    assert list(v1.sequences) == list(SEQUENCES)
    assert all(len(prompts) == 3 for prompts in v1.sequences.values())
