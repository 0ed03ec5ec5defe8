"""One contract, every mirror: the file mirror, and MongoDB through PyMongo and through motor.

MongoDB runs as a real wire-protocol server process (nx-27017), and also as a real MongoDB
when MONGODB_URI is set.
"""

from collections.abc import AsyncIterator
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
)
from tests.conftest import REAL_MONGODB_MARKS, REAL_MONGODB_URI
from tests.factories import flat_set

pytestmark = pytest.mark.anyio

MIRRORS = [
    pytest.param("file", id="file"),
    pytest.param("memory", id="memory"),
    pytest.param("nx-pymongo", id="nx-pymongo", marks=pytest.mark.mongodb),
    pytest.param("nx-motor", id="nx-motor", marks=pytest.mark.mongodb),
    pytest.param("real-pymongo", id="real-mongodb", marks=REAL_MONGODB_MARKS),
]


@pytest.fixture(params=MIRRORS)
async def mirror(request, tmp_path, unique_db_name) -> AsyncIterator[PromptMirror]:
    kind: str = request.param
    if kind == "file":
        yield FileMirror(tmp_path / "mirror")
        return
    if kind == "memory":
        yield InMemoryMirror()
        return
    uri = REAL_MONGODB_URI if kind.startswith("real") else request.getfixturevalue("nx_server").uri
    if kind.endswith("motor"):
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(uri, tz_aware=True)
    else:
        from pymongo import AsyncMongoClient

        client = AsyncMongoClient(uri, tz_aware=True)
    try:
        yield MongoMirror(database=client[unique_db_name])
    finally:
        await client.drop_database(unique_db_name)
        close = client.close()
        if close is not None:
            await close


def rich_set(version: int = 1) -> PromptSet:
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


def same_content(a: PromptSet, b: PromptSet) -> None:
    assert a.to_storybench() == b.to_storybench()
    assert list(a.sequences) == list(b.sequences)
    assert a.config_hash == b.config_hash
    assert a.version_name == b.version_name


async def test_round_trip_unicode_large_and_many_sequences(mirror):
    original = rich_set(3)
    assert await mirror.save(original) == "new"
    stored = await mirror.get(3)
    same_content(original, stored)
    assert stored.provenance.source == "mirror"
    assert await mirror.stored_hash(3) == original.config_hash
    assert len(stored.sequences) == 51
    assert len(stored.sequences["Huge"][0].text) == 200_002


async def test_latest_and_versions(mirror):
    for v in (2, 7, 5):
        await mirror.save(flat_set(v))
    assert (await mirror.latest()).version == 7
    infos = await mirror.versions()
    assert [i.version for i in infos] == [2, 5, 7]
    assert infos[1].config_hash == flat_set(5).config_hash


async def test_not_found(mirror):
    with pytest.raises(PromptSetNotFoundError):
        await mirror.latest()
    await mirror.save(flat_set(1))
    with pytest.raises(PromptSetNotFoundError) as info:
        await mirror.get(2)
    assert info.value.version == 2
    assert await mirror.stored_hash(2) is None


async def test_save_is_idempotent_and_detects_changes(mirror):
    assert await mirror.save(flat_set(1)) == "new"
    assert await mirror.save(flat_set(1)) == "unchanged"
    assert await mirror.save(flat_set(1, text_suffix=" edited")) == "updated"
    assert (await mirror.get(1)).config_hash == flat_set(1, text_suffix=" edited").config_hash
    assert [i.version for i in await mirror.versions()] == [1]


@pytest.mark.parametrize(
    "bad",
    [
        PromptSet(version=1, sequences={"S": (Prompt(name="p", text="  "),)}),
        PromptSet(version=1, sequences={}),
        PromptSet(
            version=1, sequences={"S": (Prompt(name="p", text="a"), Prompt(name="p", text="b"))}
        ),
        PromptSet(version=1, sequences={"a.b": (Prompt(name="p", text="a"),)}),
    ],
    ids=["blank-text", "no-sequence", "duplicate-prompt", "dotted-name"],
)
async def test_invalid_content_is_refused_and_the_copy_kept(mirror, bad):
    good = flat_set(1)
    await mirror.save(good)
    with pytest.raises(InvalidPromptSetError):
        await mirror.save(bad)
    same_content(good, await mirror.get(1))


async def test_concurrent_saves_leave_one_valid_copy_per_version(mirror):
    async def save(v: int, suffix: str) -> None:
        await mirror.save(flat_set(v, text_suffix=suffix))

    async with anyio.create_task_group() as tg:
        for round_ in range(4):
            for v in range(1, 6):
                tg.start_soon(save, v, f" r{round_}")
    infos = await mirror.versions()
    assert [i.version for i in infos] == [1, 2, 3, 4, 5]
    candidates = {flat_set(1, text_suffix=f" r{r}").config_hash for r in range(4)}
    for v in range(1, 6):
        stored = await mirror.get(v)
        assert stored.version == v
        assert stored.sequences["Seq0"][0].text.startswith("Prompt 0.0 r")
    assert (await mirror.get(1)).config_hash in candidates
    assert (await mirror.latest()).version == 5
