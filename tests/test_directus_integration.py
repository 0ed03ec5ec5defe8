"""The Directus source against a real Directus server started by the fixtures."""

import time

import httpx
import pytest

from devserver.sample_data import SEQUENCES, version_payload
from storybench_prompts import (
    DirectusAuthenticationError,
    DirectusConnectionError,
    DirectusNotFoundError,
    DirectusSource,
    DirectusTimeoutError,
    DirectusTimeouts,
    RetryPolicy,
)

pytestmark = [pytest.mark.anyio, pytest.mark.directus]

QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


async def test_latest_is_the_highest_published_version(directus):
    async with DirectusSource(directus.url, directus.readonly_token) as src:
        assert await src.test_connection()
        latest = await src.latest()
        versions = await src.versions()
    assert latest.version == 3  # 4 is a draft, 5 archived
    assert [v.version for v in versions] == [1, 2, 3]
    assert latest.provenance.source == "directus"
    assert list(latest.sequences) == list(SEQUENCES)
    assert all(len(prompts) == 3 for prompts in latest.sequences.values())


async def test_given_version_excludes_drafts_and_archived(directus):
    async with DirectusSource(directus.url, directus.readonly_token) as src:
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
    async with DirectusSource(directus.url, directus.readonly_token) as src:
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
    async with DirectusSource(directus.url, token) as src:
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
    async with DirectusSource(own_directus.url, own_directus.readonly_token) as src:
        ps = await src.get(50)
    assert len(ps.sequences["Long"]) == 150
    assert len(ps.sequences) == 105
    assert [p.name for p in ps.sequences["Long"]] == sorted(big_sequence)


async def test_stopped_server_is_a_connection_error(own_directus):
    own_directus.kill()
    async with DirectusSource(own_directus.url, own_directus.readonly_token, retry=QUICK) as src:
        with pytest.raises(DirectusConnectionError):
            await src.latest()


async def test_stalled_server_times_out_within_the_read_timeout(own_directus):
    timeouts = DirectusTimeouts(connect=1.0, read=1.0)
    async with DirectusSource(
        own_directus.url, own_directus.readonly_token, timeouts=timeouts, retry=QUICK
    ) as src:
        assert (await src.get(1)).version == 1
        with own_directus.paused():
            started = time.monotonic()
            with pytest.raises(DirectusTimeoutError):
                await src.get(2)
            elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 2.5
        assert (await src.get(2)).version == 2  # answers again once resumed
