"""MongoDB mirror specifics against a real wire-protocol server: storybench's reader, the
activation invariant under concurrency and crashes, stalls, outages and secrets."""

import time
from typing import Any

import anyio
import pytest
from pymongo import AsyncMongoClient

from storybench_prompts import (
    ConfigurationError,
    MirrorCorruptError,
    MirrorUnavailableError,
    MongoMirror,
    PromptSetNotFoundError,
)
from tests.factories import flat_set

pytestmark = [pytest.mark.anyio, pytest.mark.mongodb]


async def storybench_reader(db: Any) -> dict | None:
    """storybench's own read: the one active document in collection `prompts`."""
    return await db["prompts"].find_one({"is_active": True})


async def active_versions(db: Any) -> list[int]:
    return sorted([d["version"] async for d in db["prompts"].find({"is_active": True})])


async def test_storybench_reader_sees_the_last_activated_set(mongo_database):
    mirror = MongoMirror(database=mongo_database)
    await mirror.save(flat_set(1))
    assert await active_versions(mongo_database) == [1]  # the first set saved: something to read
    await mirror.save(flat_set(3))
    await mirror.save(flat_set(2))
    assert await active_versions(mongo_database) == [1]  # saving alone changes nothing
    await mirror.activate(3)  # what `sync` (latest) does
    doc = await storybench_reader(mongo_database)
    assert doc["version"] == 3
    assert doc["config_hash"] == flat_set(3).config_hash
    assert doc["sequences"] == flat_set(3).sequences_as_dicts()
    for field in ("_id", "config_hash", "version", "sequences", "created_at", "is_active"):
        assert field in doc
    await mirror.activate(2)  # storybench's `sync-prompts --version 2` pins version 2
    assert await active_versions(mongo_database) == [2]
    assert (await mirror.active()).version == 2
    assert (await mirror.latest()).version == 3  # ours: the highest version, whatever is active
    await mirror.save(flat_set(2, text_suffix=" edited"))  # a re-sync keeps it active
    assert await active_versions(mongo_database) == [2]
    with pytest.raises(PromptSetNotFoundError):
        await mirror.activate(99)


async def test_indexes_are_idempotent_and_version_is_unique(mongo_database):
    mirror = MongoMirror(database=mongo_database)
    await mirror.ensure_indexes()
    mirror._indexes_ready = False
    await mirror.ensure_indexes()
    keys = [list(ix["key"].keys()) async for ix in await mongo_database["prompts"].list_indexes()]
    assert ["version"] in keys
    await mirror.save(flat_set(1))
    from pymongo.errors import DuplicateKeyError

    with pytest.raises(DuplicateKeyError):
        await mongo_database["prompts"].insert_one({"version": 1})


async def test_readers_never_see_zero_active_while_syncs_race(mongo_database, mongo_uri):
    first = MongoMirror(database=mongo_database)
    await first.save(flat_set(1))
    # Two syncs with their own connections, as two processes would have.
    clients = [AsyncMongoClient(mongo_uri) for _ in range(2)]
    mirrors = [MongoMirror(database=c[mongo_database.name]) for c in clients]
    zero_seen = 0
    reads = 0
    done = anyio.Event()

    async def reader() -> None:
        nonlocal zero_seen, reads
        while not done.is_set():
            reads += 1
            if await storybench_reader(mongo_database) is None:
                zero_seen += 1
            await anyio.sleep(0)

    async def sync(mirror: MongoMirror, versions: list[int], suffix: str) -> None:
        for v in versions:
            await mirror.save(flat_set(v, text_suffix=suffix))
            await mirror.activate(v)

    try:
        async with anyio.create_task_group() as readers:
            for _ in range(3):
                readers.start_soon(reader)
            async with anyio.create_task_group() as syncs:
                syncs.start_soon(sync, mirrors[0], [2, 4, 6, 8, 3], " a")
                syncs.start_soon(sync, mirrors[1], [7, 5, 9, 2, 4], " b")
            done.set()
    finally:
        for c in clients:
            await c.close()
    assert reads > 20
    assert zero_seen == 0
    active = await active_versions(mongo_database)
    assert len(active) == 1
    newest = await mongo_database["prompts"].find_one({}, sort=[("activation_seq", -1)])
    assert active == [newest["version"]]  # the most recent activation won
    versions = [d["version"] async for d in mongo_database["prompts"].find({})]
    assert sorted(versions) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


async def test_sync_killed_between_writes_keeps_a_set_active(mongo_database, monkeypatch):
    mirror = MongoMirror(database=mongo_database)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed between stamping the activation and applying it")

    monkeypatch.setattr(mirror, "reconcile", crash)
    with pytest.raises(KeyboardInterrupt):
        await mirror.activate(2)
    # The activation is recorded but not applied; the previous set is still the active one.
    assert (await storybench_reader(mongo_database))["version"] == 1
    assert (await mirror.latest()).version == 2  # our reader does not depend on is_active
    monkeypatch.undo()
    assert await mirror.save(flat_set(2)) == "unchanged"  # the next sync writes no content...
    assert await active_versions(mongo_database) == [2]  # ...and finishes the activation


async def test_crash_between_activation_and_deactivation(mongo_database, monkeypatch):
    mirror = MongoMirror(database=mongo_database)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))
    collection = mirror._collection
    original = collection.update_many

    async def die(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt("killed after activating")

    monkeypatch.setattr(collection, "update_many", die)
    with pytest.raises(KeyboardInterrupt):
        await mirror.activate(2)
    assert await active_versions(mongo_database) == [1, 2]  # two, never zero
    monkeypatch.setattr(collection, "update_many", original)
    assert await mirror.reconcile() == 2
    assert await active_versions(mongo_database) == [2]


async def test_hand_edited_document_is_refused_not_served(mongo_database):
    mirror = MongoMirror(database=mongo_database)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))
    await mongo_database["prompts"].update_one(
        {"version": 1}, {"$set": {"sequences.Seq0": [{"name": "x", "text": "tampered"}]}}
    )
    with pytest.raises(MirrorCorruptError, match="changed after it was written"):
        await mirror.get(1)
    assert (await mirror.get(2)).version == 2
    assert [i.version for i in await mirror.versions()] == [2]


async def test_stalled_mongodb_fails_within_the_socket_timeout(own_nx_server):
    mirror = MongoMirror(own_nx_server.uri, socket_timeout=1.0, server_selection_timeout=1.0)
    try:
        await mirror.save(flat_set(1))
        with own_nx_server.paused():
            started = time.monotonic()
            with pytest.raises(MirrorUnavailableError):
                await mirror.get(1)
            elapsed = time.monotonic() - started
        assert elapsed < 3.0
        assert (await mirror.get(1)).version == 1
    finally:
        await mirror.aclose()


async def test_mongodb_down_is_unavailable_quickly(own_nx_server):
    own_nx_server.kill()
    mirror = MongoMirror(own_nx_server.uri, server_selection_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(MirrorUnavailableError):
            await mirror.latest()
        assert time.monotonic() - started < 2.5
        with pytest.raises(MirrorUnavailableError):
            await mirror.save(flat_set(1))
    finally:
        await mirror.aclose()


async def test_password_never_appears(own_nx_server):
    secret = "hunter2-pass"
    uri = f"mongodb://reader:{secret}@127.0.0.1:{own_nx_server.port}/?authSource=admin"
    own_nx_server.kill()
    mirror = MongoMirror(uri, server_selection_timeout=0.3)
    try:
        assert secret not in repr(mirror)
        assert "reader:***@" in repr(mirror)
        with pytest.raises(MirrorUnavailableError) as info:
            await mirror.get(1)
        assert secret not in str(info.value)
        assert info.value.__cause__ is None or secret not in str(info.value.__cause__)
    finally:
        await mirror.aclose()


def test_missing_uri_names_the_variable(monkeypatch):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(ConfigurationError, match="MONGODB_URI"):
        MongoMirror()


async def test_empty_mirror_has_no_active_set(mongo_database):
    mirror = MongoMirror(database=mongo_database)
    with pytest.raises(PromptSetNotFoundError):
        await mirror.active()
    assert await mirror.reconcile() is None


async def test_save_repairs_a_hand_edited_document(mongo_database):
    mirror = MongoMirror(database=mongo_database)
    await mirror.save(flat_set(1))
    await mongo_database["prompts"].update_one(
        {"version": 1}, {"$set": {"sequences.Seq0": [{"name": "x", "text": "tampered"}]}}
    )
    assert await mirror.save(flat_set(1)) == "updated"
    assert (await mirror.get(1)).config_hash == flat_set(1).config_hash


async def test_resyncing_the_active_version_writes_nothing(mongo_database):
    mirror = MongoMirror(database=mongo_database)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))
    await mirror.activate(2)
    before = await mongo_database["storybench_prompts_meta"].find_one({})
    assert await mirror.save(flat_set(2)) == "unchanged"
    await mirror.activate(2)
    assert await mongo_database["storybench_prompts_meta"].find_one({}) == before
    assert await active_versions(mongo_database) == [2]
