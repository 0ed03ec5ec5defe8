"""Property-based tests of Directus payloads: valid ones round-trip exactly through conversion
and both mirrors; invalid ones are refused with the typed error and change nothing; no input
makes the converter raise anything else."""

import contextlib
import tempfile
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from storybench_prompts import (
    FileMirror,
    InvalidPromptSetError,
    MongoMirror,
    PromptSet,
    convert_version,
    prompt_set_from_storybench,
)
from tests.factories import flat_set

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=".$\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() != "")
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200
).filter(lambda s: s.strip() != "")
statuses = st.sampled_from(["published", "draft", "archived"])


@st.composite
def valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    sequence_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    sequences = []
    for s_name in sequence_names:
        prompt_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
        prompts = [
            {
                "prompts_id": {
                    "name": p,
                    "text": draw(texts),
                    "status": "published",
                    "order_in_sequence": draw(st.none() | st.integers(-5, 50)),
                }
            }
            for p in prompt_names
        ]
        # Unpublished extras, which must vanish, possibly with clashing names.
        prompts += [
            {"prompts_id": {"name": prompt_names[0], "text": "", "status": "draft"}}
            for _ in range(draw(st.integers(0, 1)))
        ]
        prompts = draw(st.permutations(prompts))
        sequences.append(
            {
                "prompt_sequences_id": {
                    "sequence_name": s_name,
                    "status": "published",
                    "prompts_in_sequence": prompts,
                }
            }
        )
    if draw(st.booleans()):
        sequences.append(
            {
                "prompt_sequences_id": {
                    "sequence_name": sequence_names[0],
                    "status": draw(st.sampled_from(["draft", "archived"])),
                    "prompts_in_sequence": [],
                }
            }
        )
    return {
        "id": draw(st.integers(1, 10**6)),
        "version_number": draw(st.integers(0, 10**6)),
        "status": "published",
        "version_name": draw(st.none() | names),
        "sequences_in_set": sequences,
    }


def break_payload(payload: dict[str, Any], how: int) -> dict[str, Any]:
    seq = next(
        j["prompt_sequences_id"]
        for j in payload["sequences_in_set"]
        if j["prompt_sequences_id"]["status"] == "published"
    )
    published = [
        j["prompts_id"]
        for j in seq["prompts_in_sequence"]
        if j["prompts_id"]["status"] == "published"
    ]
    if how == 0:
        published[0]["text"] = "   "
    elif how == 1:
        seq["prompts_in_sequence"].append({"prompts_id": dict(published[0])})
    elif how == 2:
        payload["sequences_in_set"].append({"prompt_sequences_id": dict(seq)})
    else:
        published[0]["order_in_sequence"] = "first"
    return payload


@given(valid_payloads())
def test_valid_payloads_convert_deterministically(payload):
    prompt_set = convert_version(payload)
    again = prompt_set_from_storybench(
        prompt_set.to_storybench() | {"version_name": prompt_set.version_name}
    )
    assert again.config_hash == prompt_set.config_hash
    assert again.to_storybench() == prompt_set.to_storybench()
    for prompts in prompt_set.sequences.values():
        assert len({p.name for p in prompts}) == len(prompts)


@given(valid_payloads(), st.integers(0, 3))
def test_invalid_payloads_raise_only_the_typed_error(payload, how):
    with pytest.raises(InvalidPromptSetError) as info:
        convert_version(break_payload(payload, how))
    assert info.value.problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "id": json_values,
                "version_number": json_values,
                "status": json_values,
                "sequences_in_set": st.lists(
                    st.fixed_dictionaries({"prompt_sequences_id": json_values}), max_size=3
                ),
            }
        ),
    )
)
def test_no_input_makes_the_converter_raise_anything_else(raw):
    with contextlib.suppress(InvalidPromptSetError):
        convert_version(raw) if isinstance(raw, dict) else convert_version({"x": raw})


async def _round_trip(mirror: Any, prompt_set: PromptSet, broken: PromptSet) -> None:
    assert await mirror.save(prompt_set) == "new"
    stored = await mirror.get(prompt_set.version)
    assert stored.config_hash == prompt_set.config_hash
    assert stored.to_storybench() == prompt_set.to_storybench()
    assert list(stored.sequences) == list(prompt_set.sequences)
    with pytest.raises(InvalidPromptSetError):
        await mirror.save(broken)
    assert (await mirror.get(prompt_set.version)).config_hash == prompt_set.config_hash


def _broken_copy(prompt_set: PromptSet) -> PromptSet:
    name, prompts = next(iter(prompt_set.sequences.items()))
    bad = (prompts[0].model_copy(update={"text": ""}), *prompts[1:])
    return prompt_set.model_copy(update={"sequences": {**prompt_set.sequences, name: bad}})


@settings(max_examples=30, deadline=None)
@given(valid_payloads())
def test_valid_sets_round_trip_through_the_file_mirror(payload):
    prompt_set = convert_version(payload)
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(_round_trip, FileMirror(tmp), prompt_set, _broken_copy(prompt_set))


@pytest.mark.mongodb
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=valid_payloads())
def test_valid_sets_round_trip_through_the_mongodb_mirror(nx_server, payload):
    prompt_set = convert_version(payload)

    async def run() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(nx_server.uri)
        name = f"prop_{abs(hash(prompt_set.content_hash)) % 10**9}"
        try:
            await client.drop_database(name)
            await _round_trip(
                MongoMirror(database=client[name]), prompt_set, _broken_copy(prompt_set)
            )
        finally:
            await client.drop_database(name)
            await client.close()

    anyio.run(run)


def test_broken_copy_really_is_invalid():
    with pytest.raises(InvalidPromptSetError):
        prompt_set_from_storybench(_broken_copy(flat_set()).to_storybench())
