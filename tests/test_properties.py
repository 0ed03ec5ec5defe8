"""Property-based tests of Directus payloads: valid ones round-trip exactly through conversion
and both mirrors; invalid ones are refused with the typed error and change nothing; no input
makes the converter raise anything else."""

import contextlib
import json
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from storybench_prompts import (
    FileMirror,
    InMemoryMirror,
    InvalidPromptSetError,
    MongoMirror,
    Prompt,
    PromptSet,
    convert_version,
    prompt_set_from_storybench,
)
from storybench_prompts.content.kinds import (
    EVALUATION_SETS,
    PROMPT_SETS,
    ContentKind,
    ensure_valid,
    validate_content,
)
from storybench_prompts.content.models import Criterion, EvaluationSet, VersionedContent
from tests.factories import flat_evaluation_set, flat_set

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
        anyio.run(
            _round_trip, FileMirror(tmp, kind=PROMPT_SETS), prompt_set, _broken_copy(prompt_set)
        )


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
                MongoMirror(database=client[name], kind=PROMPT_SETS),
                prompt_set,
                _broken_copy(prompt_set),
            )
        finally:
            await client.drop_database(name)
            await client.close()

    anyio.run(run)


def test_broken_copy_really_is_invalid():
    with pytest.raises(InvalidPromptSetError):
        prompt_set_from_storybench(_broken_copy(flat_set()).to_storybench())


# -- every set the content rules accept round-trips through both mirrors, both kinds --------
#
# Sets are drawn directly (not through Directus payloads) from a wide alphabet that now and
# then includes what the rules refuse: lone surrogates, NUL in names, '.' and '$'. A set the
# rules accept must come back byte for byte; a set they refuse must be refused before any
# write, leaving the mirror exactly as it was.

INT64 = st.integers(-(2**63), 2**63 - 1)  # the rules do not bound integers; BSON holds 8 bytes
awkward = st.sampled_from(["\x00", "\ud800", "\udfff", ".", "$", " ", "\u200b", "🐉", "\n"])
wide_chars = st.one_of(st.characters(blacklist_categories=("Cs",)), awkward)
wide_names = st.text(alphabet=wide_chars, min_size=1, max_size=10)
wide_texts = st.text(alphabet=wide_chars, min_size=1, max_size=80)
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
dates = st.none() | st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.none() | offsets
)
directus_ids = st.none() | INT64 | wide_names


@st.composite
def any_prompt_sets(draw: st.DrawFn, version: int | None = None) -> PromptSet:
    sequences = draw(
        st.dictionaries(
            wide_names,
            st.lists(
                st.builds(Prompt, name=wide_names, text=wide_texts), min_size=0, max_size=4
            ).map(tuple),
            min_size=0,
            max_size=4,
        )
    )
    return PromptSet(
        version=version if version is not None else draw(INT64),
        version_name=draw(st.none() | wide_names),
        directus_id=draw(directus_ids),
        created_at=draw(dates),
        updated_at=draw(dates),
        sequences=sequences,
    )


@st.composite
def any_evaluation_sets(draw: st.DrawFn, version: int | None = None) -> EvaluationSet:
    criteria = draw(
        st.dictionaries(
            wide_names,
            st.builds(
                Criterion,
                name=wide_names,
                description=st.text(alphabet=wide_chars, max_size=40),
                scale=st.tuples(st.sampled_from([1, 1, 1, 0]), st.integers(-1, 2**40)),
                criteria=wide_texts,
            ),
            min_size=0,
            max_size=4,
        )
    )
    return EvaluationSet(
        version=version if version is not None else draw(INT64),
        version_name=draw(st.none() | wide_names),
        directus_id=draw(directus_ids),
        created_at=draw(dates),
        updated_at=draw(dates),
        criteria=criteria,
        scoring_guidelines=draw(st.text(alphabet=wide_chars, max_size=60)),
    )


SET_STRATEGIES = {PROMPT_SETS.name: any_prompt_sets, EVALUATION_SETS.name: any_evaluation_sets}


def _previous(kind: ContentKind[Any], version: int) -> VersionedContent:
    made = flat_set(1) if kind is PROMPT_SETS else flat_evaluation_set(1)
    return made.model_copy(update={"version": version})


def _exact(content: VersionedContent) -> tuple[str, str, str, str | None]:
    storybench = json.dumps(content.to_storybench(), ensure_ascii=False)
    return storybench, content.config_hash, content.content_hash, content.version_name


async def _file_state(mirror: Any) -> dict[str, bytes]:
    root = mirror.directory
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def _mongo_state(mirror: Any) -> list[dict[str, Any]]:
    return [d async for d in mirror._collection.find({}, sort=[("_id", 1)])]


async def _check_content(mirror: Any, content: VersionedContent, state: Any) -> None:
    previous = _previous(mirror.kind, content.version)
    await mirror.save(previous)
    before = await state(mirror)
    problems = validate_content(content)
    event("refused by the rules" if problems else "accepted by the rules")
    if problems:
        with pytest.raises(InvalidPromptSetError):
            await mirror.save(content)
        assert await state(mirror) == before  # refused before any write
        assert _exact(await mirror.get(content.version)) == _exact(previous)
        return
    await mirror.save(content)
    stored = await mirror.get(content.version)
    assert _exact(stored) == _exact(content)
    assert _exact(await mirror.get_by_hash(content.config_hash)) == _exact(content)
    assert await mirror.stored_hash(content.version) == content.config_hash


def _with_bad_name(content: VersionedContent, bad: str) -> VersionedContent:
    if isinstance(content, PromptSet):
        return content.model_copy(
            update={"sequences": {**content.sequences, bad: (Prompt(name="p", text="t"),)}}
        )
    assert isinstance(content, EvaluationSet)
    criterion = Criterion(name="n", description="", scale=(1, 3), criteria="c")
    return content.model_copy(update={"criteria": {**content.criteria, bad: criterion}})


bad_names = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=4),
    st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=4),
)


@pytest.mark.parametrize("kind", [PROMPT_SETS, EVALUATION_SETS], ids=lambda k: k.name)
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_every_accepted_set_round_trips_through_the_file_mirror(kind, data):
    content = data.draw(SET_STRATEGIES[kind.name]())
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(_check_content, FileMirror(tmp, kind=kind), content, _file_state)


@pytest.mark.mongodb
@pytest.mark.parametrize("kind", [PROMPT_SETS, EVALUATION_SETS], ids=lambda k: k.name)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_accepted_set_round_trips_through_the_mongodb_mirror(nx_server, kind, data):
    content = data.draw(SET_STRATEGIES[kind.name]())

    async def run() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(nx_server.uri, tz_aware=True)
        name = f"prop_{uuid.uuid4().hex[:12]}"
        try:
            mirror = MongoMirror(database=client[name], kind=kind)
            await _check_content(mirror, content, _mongo_state)
        finally:
            await client.drop_database(name)
            await client.close()

    anyio.run(run)


@pytest.mark.parametrize("kind", [PROMPT_SETS, EVALUATION_SETS], ids=lambda k: k.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), bad=bad_names)
def test_lone_surrogates_and_nul_in_names_are_refused_before_any_write(kind, data, bad):
    previous = _previous(kind, 3)
    content = _with_bad_name(previous.model_copy(update={"version": 3}), bad)
    with pytest.raises(InvalidPromptSetError):
        ensure_valid(content)

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            await _check_content(FileMirror(tmp, kind=kind), content, _file_state)
        await _check_content(InMemoryMirror(kind=kind), content, _memory_state)

    anyio.run(run)


async def _memory_state(mirror: Any) -> Any:
    return (dict(mirror._current), dict(mirror._by_hash), set(mirror._withdrawn), mirror.saves)


@pytest.mark.mongodb
@pytest.mark.parametrize("kind", [PROMPT_SETS, EVALUATION_SETS], ids=lambda k: k.name)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bad=bad_names)
def test_lone_surrogates_and_nul_in_names_never_reach_mongodb(nx_server, kind, bad):
    content = _with_bad_name(_previous(kind, 3), bad)

    async def run() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(nx_server.uri, tz_aware=True)
        name = f"prop_{uuid.uuid4().hex[:12]}"
        try:
            mirror = MongoMirror(database=client[name], kind=kind)
            await _check_content(mirror, content, _mongo_state)
        finally:
            await client.drop_database(name)
            await client.close()

    anyio.run(run)
