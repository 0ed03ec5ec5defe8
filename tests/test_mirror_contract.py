"""One contract, every mirror, both content kinds: the file mirror, the in-memory mirror, and
MongoDB through PyMongo and through motor.

MongoDB runs as a real wire-protocol server process (nx-27017), and also as a real MongoDB
when MONGODB_URI is set.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from storybench_prompts import (
    FileMirror,
    InMemoryMirror,
    InvalidPromptSetError,
    MongoMirror,
    Prompt,
    PromptMirror,
    PromptSet,
    PromptSetNotFoundError,
    Provenance,
)
from storybench_prompts.content.kinds import EVALUATION_SETS, PROMPT_SETS, ContentKind
from storybench_prompts.content.models import Criterion, EvaluationSet, VersionedContent
from tests.conftest import REAL_MONGODB_MARKS, REAL_MONGODB_URI
from tests.factories import flat_evaluation_set, flat_set

pytestmark = pytest.mark.anyio

BACKENDS = [
    pytest.param("file", id="file"),
    pytest.param("memory", id="memory"),
    pytest.param("nx-pymongo", id="nx-pymongo", marks=pytest.mark.mongodb),
    pytest.param("nx-motor", id="nx-motor", marks=pytest.mark.mongodb),
    pytest.param("real-pymongo", id="real-mongodb", marks=REAL_MONGODB_MARKS),
]
KINDS = [pytest.param(PROMPT_SETS, id="prompts"), pytest.param(EVALUATION_SETS, id="evaluations")]


@dataclass
class Subject:
    mirror: Any
    kind: ContentKind[Any]
    backend: str

    def make(self, version: int, suffix: str = "") -> VersionedContent:
        if self.kind is PROMPT_SETS:
            return flat_set(version, text_suffix=suffix)
        return flat_evaluation_set(version, text_suffix=suffix)

    async def active_version(self) -> int | None:
        """Which version storybench would run; None when none is active."""
        if isinstance(self.mirror, InMemoryMirror):
            return self.mirror.active_version
        try:
            return (await self.mirror.active()).version
        except PromptSetNotFoundError:
            return None

    @property
    def tracks_active(self) -> bool:
        return not isinstance(self.mirror, FileMirror)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> ContentKind[Any]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=BACKENDS)
async def subject(request, kind, tmp_path, unique_db_name) -> AsyncIterator[Subject]:
    backend: str = request.param
    if backend == "file":
        # Evaluation sets through for_kind: a sibling in the same directory.
        base = FileMirror(tmp_path / "mirror", kind=PROMPT_SETS)
        yield Subject(base if kind is PROMPT_SETS else base.for_kind(kind), kind, backend)
        return
    if backend == "memory":
        yield Subject(InMemoryMirror(kind=kind), kind, backend)
        return
    uri = (
        REAL_MONGODB_URI if backend.startswith("real") else request.getfixturevalue("nx_server").uri
    )
    if backend.endswith("motor"):
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(uri, tz_aware=True)
    else:
        from pymongo import AsyncMongoClient

        client = AsyncMongoClient(uri, tz_aware=True)
    try:
        base = MongoMirror(database=client[unique_db_name], kind=PROMPT_SETS)
        yield Subject(base if kind is PROMPT_SETS else base.for_kind(kind), kind, backend)
    finally:
        await client.drop_database(unique_db_name)
        close = client.close()
        if close is not None:
            await close


def rich_prompt_set(version: int) -> PromptSet:
    sequences = {
        f"Séquence {i} 🎬": tuple(
            Prompt(name=f"Prompt {j} — «{i}»", text=f"Écris {i}/{j}: 龍 🐉 \u200b end")
            for j in range(3)
        )
        for i in range(50)
    }
    sequences["Huge"] = (Prompt(name="big", text="x" * 200_000 + " 🎉"),)
    return PromptSet(
        version=version, version_name="rich ✨", directus_id=version + 7, sequences=sequences
    )


def rich_evaluation_set(version: int) -> EvaluationSet:
    criteria = {
        f"critère_{i}_✍": Criterion(
            name=f"Critère {i} ✍",
            description=f"Profondeur «{i}» 龍",
            scale=(1, 10),
            criteria=f"Note {i}: 🐉 \u200b" + ("y" * 50_000 if i == 0 else ""),
        )
        for i in range(40)
    }
    return EvaluationSet(
        version=version,
        version_name="riche ✨",
        directus_id=f"uuid-{version}",
        criteria=criteria,
        scoring_guidelines="Soyez justes. 🎉",
    )


def same_content(a: VersionedContent, b: VersionedContent) -> None:
    assert a.to_storybench() == b.to_storybench()
    assert a.config_hash == b.config_hash
    assert a.content_hash == b.content_hash
    assert a.version_name == b.version_name
    if isinstance(a, PromptSet):
        assert isinstance(b, PromptSet)
        assert list(a.sequences) == list(b.sequences)
    else:
        assert isinstance(a, EvaluationSet)
        assert isinstance(b, EvaluationSet)
        assert list(a.criteria) == list(b.criteria)


def from_mirror(content: VersionedContent) -> VersionedContent:
    """The same content as a mirror-to-mirror copy would carry it (not fresh from Directus)."""
    return content.with_provenance(
        Provenance(source="mirror", origin="directus", fetched_at_epoch=1.0)
    )


async def test_the_mirror_implements_the_protocol(subject):
    assert isinstance(subject.mirror, PromptMirror)
    assert subject.mirror.kind is subject.kind


async def test_round_trip_unicode_large_and_many_entries(subject):
    original = (rich_prompt_set if subject.kind is PROMPT_SETS else rich_evaluation_set)(3)
    assert await subject.mirror.save(original) == "new"
    stored = await subject.mirror.get(3)
    same_content(original, stored)
    assert stored.provenance.source == "mirror"
    assert await subject.mirror.stored_hash(3) == original.config_hash
    same_content(original, await subject.mirror.get_by_hash(original.config_hash))


async def test_latest_and_versions(subject):
    for v in (2, 7, 5):
        await subject.mirror.save(subject.make(v))
    assert (await subject.mirror.latest()).version == 7
    infos = await subject.mirror.versions()
    assert [i.version for i in infos] == [2, 5, 7]
    assert infos[1].config_hash == subject.make(5).config_hash


async def test_not_found(subject):
    with pytest.raises(PromptSetNotFoundError):
        await subject.mirror.latest()
    await subject.mirror.save(subject.make(1))
    with pytest.raises(PromptSetNotFoundError) as info:
        await subject.mirror.get(2)
    assert info.value.version == 2
    assert await subject.mirror.stored_hash(2) is None
    with pytest.raises(PromptSetNotFoundError):
        await subject.mirror.get_by_hash("0123456789abcdef")


async def test_save_is_idempotent_and_detects_changes(subject):
    mirror = subject.mirror
    assert await mirror.save(subject.make(1)) == "new"
    assert await mirror.save(subject.make(1)) == "unchanged"
    assert await mirror.save(subject.make(1, " edited")) == "updated"
    assert (await mirror.get(1)).config_hash == subject.make(1, " edited").config_hash
    assert [i.version for i in await mirror.versions()] == [1]
    # Back to the first content: it is the copy synced last, so it is served again.
    assert await mirror.save(subject.make(1)) == "updated"
    assert (await mirror.get(1)).config_hash == subject.make(1).config_hash
    assert await mirror.stored_hash(1) == subject.make(1).config_hash


async def test_every_saved_content_stays_readable_by_its_hash(subject):
    mirror = subject.mirror
    contents = [subject.make(1), subject.make(1, " v2"), subject.make(1, " v3"), subject.make(2)]
    for content in contents:
        await mirror.save(content)
    await mirror.withdraw(1)
    for content in contents:
        same_content(content, await mirror.get_by_hash(content.config_hash))


async def test_saving_another_kind_is_a_programming_error(subject):
    other = flat_evaluation_set(1) if subject.kind is PROMPT_SETS else flat_set(1)
    with pytest.raises(TypeError):
        await subject.mirror.save(other)


def invalid_contents(kind: ContentKind[Any]) -> list[VersionedContent]:
    if kind is PROMPT_SETS:
        return [
            PromptSet(version=1, sequences={"S": (Prompt(name="p", text="  "),)}),
            PromptSet(version=1, sequences={}),
            PromptSet(
                version=1,
                sequences={"S": (Prompt(name="p", text="a"), Prompt(name="p", text="b"))},
            ),
            PromptSet(version=1, sequences={"a.b": (Prompt(name="p", text="a"),)}),
            PromptSet(version=1, sequences={"a\x00b": (Prompt(name="p", text="a"),)}),
            PromptSet(version=1, sequences={"S": (Prompt(name="p", text="lone \ud800"),)}),
        ]
    good = flat_evaluation_set(1)
    criterion = next(iter(good.criteria.values()))
    return [
        good.model_copy(update={"criteria": {}}),
        good.model_copy(update={"criteria": {"$bad": criterion}}),
        good.model_copy(update={"criteria": {"a\x00b": criterion}}),
        good.model_copy(update={"criteria": {"c": criterion.model_copy(update={"criteria": " "})}}),
        good.model_copy(update={"criteria": {"c": criterion.model_copy(update={"scale": (1, 0)})}}),
        good.model_copy(update={"scoring_guidelines": "lone \udfff"}),
    ]


@pytest.mark.parametrize("index", range(6))
async def test_invalid_content_is_refused_and_the_copy_kept(subject, index):
    good = subject.make(1)
    await subject.mirror.save(good)
    with pytest.raises(InvalidPromptSetError):
        await subject.mirror.save(invalid_contents(subject.kind)[index])
    same_content(good, await subject.mirror.get(1))
    assert [i.version for i in await subject.mirror.versions()] == [1]


async def test_concurrent_saves_leave_one_valid_copy_per_version(subject):
    async def save(v: int, suffix: str) -> None:
        await subject.mirror.save(subject.make(v, suffix))

    async with anyio.create_task_group() as tg:
        for round_ in range(4):
            for v in range(1, 6):
                tg.start_soon(save, v, f" r{round_}")
    infos = await subject.mirror.versions()
    assert [i.version for i in infos] == [1, 2, 3, 4, 5]
    for v in range(1, 6):
        candidates = {subject.make(v, f" r{r}").config_hash for r in range(4)}
        stored = await subject.mirror.get(v)
        assert stored.version == v
        assert stored.config_hash in candidates
        for candidate in candidates:  # every content saved is kept, whichever is current
            assert (await subject.mirror.get_by_hash(candidate)).config_hash == candidate
    assert (await subject.mirror.latest()).version == 5


async def test_concurrent_saves_of_the_same_content(subject):
    content = subject.make(4)
    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(subject.mirror.save, content)
    assert await subject.mirror.save(content) == "unchanged"
    same_content(content, await subject.mirror.get(4))


# -- withdrawal -----------------------------------------------------------------------------


async def test_a_withdrawn_version_is_never_served_but_kept_by_hash(subject):
    mirror = subject.mirror
    for v in (1, 2, 3):
        await mirror.save(subject.make(v))
    assert await mirror.withdraw(3) is True
    assert await mirror.withdraw(3) is False  # nothing left to change
    assert await mirror.withdraw(99) is False
    with pytest.raises(PromptSetNotFoundError) as info:
        await mirror.get(3)
    assert info.value.version == 3
    assert (await mirror.latest()).version == 2
    assert [i.version for i in await mirror.versions()] == [1, 2]
    assert await mirror.stored_hash(3) is None
    same_content(subject.make(3), await mirror.get_by_hash(subject.make(3).config_hash))


async def test_a_fresh_save_publishes_a_withdrawn_version_again(subject):
    mirror = subject.mirror
    await mirror.save(subject.make(1))
    await mirror.save(subject.make(2, " old"))
    await mirror.withdraw(2)
    # A copy from another mirror is not Directus publishing it again.
    assert await mirror.save(from_mirror(subject.make(2, " copied"))) == "unchanged"
    with pytest.raises(PromptSetNotFoundError):
        await mirror.get(2)
    assert [i.version for i in await mirror.versions()] == [1]
    # Fresh from Directus (no provenance, or source="directus"): served again.
    assert await mirror.save(subject.make(2, " old")) == "new"
    same_content(subject.make(2, " old"), await mirror.get(2))
    assert (await mirror.latest()).version == 2
    await mirror.withdraw(2)
    fresh = subject.make(2, " new").with_provenance(
        Provenance(source="directus", origin="directus", fetched_at_epoch=5.0)
    )
    assert await mirror.save(fresh) == "new"
    assert (await mirror.get(2)).config_hash == fresh.config_hash


# -- activation -----------------------------------------------------------------------------


async def test_save_never_activates_and_activate_only_if_none(subject):
    if not subject.tracks_active:
        pytest.skip("the file mirror has no active set (storybench does not read it)")
    mirror = subject.mirror
    for v in (1, 3, 2):
        await mirror.save(subject.make(v))
    assert await subject.active_version() is None  # saves alone activate nothing
    await mirror.activate(3, only_if_none=True)  # what `warm` does
    assert await subject.active_version() == 3
    await mirror.activate(1, only_if_none=True)
    assert await subject.active_version() == 3  # something is active: left alone
    await mirror.activate(1)  # what `sync --version 1` does
    assert await subject.active_version() == 1
    await mirror.save(subject.make(2, " edited"))
    await mirror.save(subject.make(4))
    assert await subject.active_version() == 1
    with pytest.raises(PromptSetNotFoundError):
        await mirror.activate(99)


async def test_withdrawing_the_active_version_activates_the_highest_served(subject):
    if not subject.tracks_active:
        pytest.skip("the file mirror has no active set (storybench does not read it)")
    mirror = subject.mirror
    for v in (1, 2, 3, 4):
        await mirror.save(subject.make(v))
    await mirror.activate(2)
    await mirror.withdraw(4)  # not the active one: nothing moves
    assert await subject.active_version() == 2
    await mirror.withdraw(2)
    assert await subject.active_version() == 3  # the highest version still served
    with pytest.raises(PromptSetNotFoundError):
        await mirror.activate(2)  # withdrawn: not served, so not activatable
    await mirror.withdraw(3)
    assert await subject.active_version() == 1
    await mirror.withdraw(1)
    # Nothing is served any more; storybench keeps running what it ran (never zero active).
    assert await subject.active_version() == 1


async def test_file_mirror_activation_is_a_no_op(tmp_path, kind):
    mirror = FileMirror(tmp_path, kind=kind)
    await mirror.activate(5)
    await mirror.activate(5, only_if_none=True)
    assert list(tmp_path.iterdir()) == []


async def test_activate_only_if_none_races_end_on_the_highest(subject):
    """Concurrent first saves (any order) then activate(max), as `warm` and `sync` do."""
    if not subject.tracks_active:
        pytest.skip("the file mirror has no active set (storybench does not read it)")
    versions = [1, 2, 3, 4, 5]

    async def warm(order: list[int], only_if_none: bool) -> None:
        for v in order:
            await subject.mirror.save(subject.make(v))
            await anyio.sleep(0)
        await subject.mirror.activate(max(order), only_if_none=only_if_none)

    async with anyio.create_task_group() as tg:
        tg.start_soon(warm, versions, True)
        tg.start_soon(warm, versions[::-1], True)
        tg.start_soon(warm, [3, 5, 1, 4, 2], False)
    assert await subject.active_version() == 5


async def test_short_hashes_resolve_against_every_hash_held(subject):
    mirror = subject.mirror
    first, edited = subject.make(1), subject.make(1, suffix=" (edited)")
    other = subject.make(2)
    for content in (first, edited, other):
        await mirror.save(content)
    assert await mirror.hashes_with_prefix(first.config_hash[:6]) == [first.config_hash]
    # The copy an edit replaced is still held (a record), and found by its prefix.
    assert await mirror.hashes_with_prefix(first.config_hash[:8].upper()) == [first.config_hash]
    assert await mirror.hashes_with_prefix(edited.config_hash) == [edited.config_hash]
    every = sorted({first.config_hash, edited.config_hash, other.config_hash})
    assert await mirror.hashes_with_prefix("") == every
    unknown = next(
        p for p in (f"{i:06x}" for i in range(1 << 24)) if not any(h.startswith(p) for h in every)
    )
    assert await mirror.hashes_with_prefix(unknown) == []


async def test_withdrawn_versions_are_listed_apart_with_their_last_hash(subject):
    mirror = subject.mirror
    kept, gone = subject.make(1), subject.make(2)
    await mirror.save(kept)
    await mirror.save(gone)
    assert await mirror.withdrawn_versions() == []
    assert await mirror.withdraw(2)
    withdrawn = await mirror.withdrawn_versions()
    assert [(i.version, i.config_hash) for i in withdrawn] == [(2, gone.config_hash)]
    assert [i.version for i in await mirror.versions()] == [1]
    assert "mirror" in mirror.location
