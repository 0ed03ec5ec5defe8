"""MongoDB mirror specifics against a real wire-protocol server: storybench's reader and
documents, content addressing, the activation invariant under concurrency and crashes, stalls,
outages, typed driver errors and secrets."""

import time
from datetime import UTC, datetime
from typing import Any

import anyio
import bson.errors
import pymongo
import pymongo.errors
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from storybench_prompts import (
    ConfigurationError,
    MirrorCorruptError,
    MirrorUnavailableError,
    MongoMirror,
    Prompt,
    PromptSet,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from storybench_prompts.content.kinds import EVALUATION_SETS, PROMPT_SETS
from tests.factories import flat_evaluation_set, flat_set, lax

pytestmark = [pytest.mark.anyio, pytest.mark.mongodb]


async def storybench_reader(db: Any) -> dict | None:
    """storybench's own read: the one active document in collection `prompts`."""
    return await db["prompts"].find_one({"is_active": True})


async def active_versions(db: Any, collection: str = "prompts") -> list[int]:
    return sorted([d["version"] async for d in db[collection].find({"is_active": True})])


def storybench_document(prompt_set: PromptSet, *, active: bool, created_at: datetime) -> dict:
    """A document as storybench's own `sync-prompts` writes it (no Directus id, ObjectId _id)."""
    return {
        "_id": ObjectId(),
        "config_hash": prompt_set.config_hash,
        "version": prompt_set.version,
        "sequences": prompt_set.sequences_as_dicts(),
        "created_at": created_at,
        "is_active": active,
    }


async def test_the_server_matches_missing_fields_with_none(mongo_database):
    """The mirror's reads rely on {field: None} matching a missing field; check the server."""
    await mongo_database["probe"].insert_many([{"_id": 1}, {"_id": 2, "withdrawn_at": 5}])
    found = [d["_id"] async for d in mongo_database["probe"].find({"withdrawn_at": None})]
    assert found == [1]


@pytest.mark.parametrize(
    "handmade",
    [
        {"_id": "handmade", "version": "three", "activation_seq": 1000, "is_active": True},
        {"_id": "handmade", "activation_seq": 1000, "is_active": True},
        {"_id": "handmade", "schema_version": 1, "withdrawn_at": None, "is_active": False},
    ],
)
async def test_a_hand_made_document_without_a_version_blocks_no_write(mongo_database, handmade):
    await mongo_database["prompts"].insert_one(dict(handmade))
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    assert [await mirror.save(flat_set(v)) for v in (1, 2, 3)] == ["new"] * 3
    await mirror.activate(3)
    await mirror.activate(2)
    assert await active_versions(mongo_database) == [2]  # the only active document
    assert (await storybench_reader(mongo_database))["config_hash"] == flat_set(2).config_hash
    assert (await mirror.latest()).version == 3
    assert [i.version for i in await mirror.versions()] == [1, 2, 3]
    assert await mirror.reconcile() == 2
    kept = await mongo_database["prompts"].find_one({"_id": "handmade"})
    assert {k: v for k, v in kept.items() if k != "is_active"} == {
        k: v for k, v in handmade.items() if k != "is_active"
    }  # only its flag changed


async def test_storybench_reader_sees_the_last_activated_set(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(3))
    await mirror.save(flat_set(2))
    assert await active_versions(mongo_database) == []  # saving alone activates nothing
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
    with pytest.raises(PromptSetNotFoundError):
        await mirror.activate(99)


async def test_a_newer_copy_of_the_active_version_takes_the_flag(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))
    await mirror.activate(2)
    edited = flat_set(2, text_suffix=" edited")
    assert await mirror.save(edited) == "updated"
    # Still version 2 (a save never changes the version), now the content Directus publishes.
    doc = await storybench_reader(mongo_database)
    assert doc["_id"] == edited.config_hash
    assert await active_versions(mongo_database) == [2]
    assert (await mirror.active()).config_hash == edited.config_hash


async def test_an_edit_adds_a_document_and_never_changes_the_old_one(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    first, edited = flat_set(1), flat_set(1, text_suffix=" edited")
    await mirror.save(first)
    before = await mongo_database["prompts"].find_one({"_id": first.config_hash})
    await mirror.save(edited)
    await mirror.save(first)  # back again: a metadata update, never new content
    await mirror.save(edited)
    docs = {d["_id"]: d async for d in mongo_database["prompts"].find({})}
    assert set(docs) == {first.config_hash, edited.config_hash}
    after = docs[first.config_hash]
    for field in ("sequences", "config_hash", "version", "created_at", "content_hash"):
        assert after[field] == before[field]
    assert (await mirror.get(1)).config_hash == edited.config_hash
    assert (await mirror.get_by_hash(first.config_hash)).config_hash == first.config_hash


async def test_racing_saves_of_one_hash_end_with_one_document(mongo_database, mongo_uri):
    clients = [AsyncMongoClient(mongo_uri, tz_aware=True) for _ in range(4)]
    try:
        mirrors = [MongoMirror(database=c[mongo_database.name], kind=PROMPT_SETS) for c in clients]
        content = flat_set(5)
        async with anyio.create_task_group() as tg:
            for mirror in mirrors:
                for _ in range(3):
                    tg.start_soon(mirror.save, content)
    finally:
        for c in clients:
            await c.close()
    assert await mongo_database["prompts"].count_documents({}) == 1
    doc = await mongo_database["prompts"].find_one({})
    assert doc["_id"] == content.config_hash


async def test_indexes_are_non_unique_and_the_old_unique_index_goes(mongo_database):
    collection = mongo_database["prompts"]
    # Our 0.1 schema: one document per version, enforced by a unique index.
    await collection.create_index([("version", pymongo.ASCENDING)], unique=True, name="version_1")
    # An index someone made on a key we want too, under another name: left alone.
    await collection.create_index([("config_hash", pymongo.ASCENDING)], name="by_hash")
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    assert await mirror.save(flat_set(1, text_suffix=" edited")) == "updated"
    info = await collection.index_information()
    keys = {tuple(k for k, _ in ix["key"]): ix for ix in info.values()}
    assert ("version",) not in keys
    assert ("config_hash",) in keys
    assert ("version", "sync_order") in keys
    assert not any(ix.get("unique") for k, ix in keys.items() if k != ("_id",))
    # Idempotent: another mirror on the same collection builds nothing more.
    await MongoMirror(database=mongo_database, kind=PROMPT_SETS).ensure_indexes()
    assert len(await collection.index_information()) == len(info)


async def test_an_old_unique_index_that_cannot_be_dropped_is_reported(mongo_database, monkeypatch):
    await mongo_database["prompts"].create_index([("version", pymongo.ASCENDING)], unique=True)
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)

    async def refused(*args: Any, **kwargs: Any) -> None:
        return None  # as if the server refused to drop it (no dropIndex privilege)

    monkeypatch.setattr(mirror.indexes, "drop_unique_version_index", refused)
    await mirror.save(flat_set(1))
    with pytest.raises(MirrorUnavailableError, match="unique index on 'version'"):
        await mirror.save(flat_set(1, text_suffix=" edited"))
    assert (await mirror.get(1)).config_hash == flat_set(1).config_hash


async def test_readers_never_see_zero_active_while_syncs_race(mongo_database, mongo_uri):
    first = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await first.save(flat_set(1))
    await first.activate(1)
    # Two syncs with their own connections, as two processes would have.
    clients = [AsyncMongoClient(mongo_uri, tz_aware=True) for _ in range(2)]
    mirrors = [MongoMirror(database=c[mongo_database.name], kind=PROMPT_SETS) for c in clients]
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
    active = [d async for d in mongo_database["prompts"].find({"is_active": True})]
    assert len(active) == 1
    newest = await mongo_database["prompts"].find_one({}, sort=[("activation_seq", -1)])
    assert active[0]["version"] == newest["version"]  # the most recent activation won
    # ...and the flag is on the version's current copy.
    assert active[0]["config_hash"] == await first.stored_hash(newest["version"])
    versions = {d["version"] async for d in mongo_database["prompts"].find({})}
    assert versions == set(range(1, 10))


async def test_sync_killed_between_writes_keeps_a_set_active(mongo_database, monkeypatch):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await mirror.activate(1)
    await mirror.save(flat_set(2))

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed between stamping the activation and applying it")

    monkeypatch.setattr(mirror.active_set, "reconcile", crash)
    with pytest.raises(KeyboardInterrupt):
        await mirror.activate(2)
    # The activation is recorded but not applied; the previous set is still the active one.
    assert (await storybench_reader(mongo_database))["version"] == 1
    assert (await mirror.latest()).version == 2  # our reader does not depend on is_active
    monkeypatch.undo()
    assert await mirror.save(flat_set(2)) == "unchanged"  # the next sync writes no content...
    assert await active_versions(mongo_database) == [2]  # ...and finishes the activation


async def test_crash_between_activation_and_deactivation(mongo_database, monkeypatch):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await mirror.activate(1)
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


async def tamper(db: Any, config_hash: str) -> None:
    await db["prompts"].update_one(
        {"_id": config_hash}, {"$set": {"sequences.Seq0": [{"name": "x", "text": "tampered"}]}}
    )


async def test_hand_edited_document_is_refused_not_served(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))
    await tamper(mongo_database, flat_set(1).config_hash)
    from storybench_prompts.mirrors import integrity

    before = integrity.failures()
    with pytest.raises(MirrorCorruptError, match="changed after it was written"):
        await mirror.get(1)
    assert integrity.failures() == before + 1  # the decode re-hashes, and counts the mismatch
    with pytest.raises(MirrorCorruptError):
        await mirror.get_by_hash(flat_set(1).config_hash)
    assert (await mirror.get(2)).version == 2
    assert [i.version for i in await mirror.versions()] == [2]
    assert await mirror.stored_hash(1) is None  # so that a sync writes it again
    await tamper(mongo_database, flat_set(2).config_hash)
    with pytest.raises(MirrorCorruptError):
        await mirror.latest()  # the highest version is broken: never silently older content


async def test_save_restores_a_hand_edited_document(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await tamper(mongo_database, flat_set(1).config_hash)
    assert await mirror.save(flat_set(1)) == "updated"
    assert (await mirror.get(1)).config_hash == flat_set(1).config_hash
    assert await mongo_database["prompts"].count_documents({}) == 1


async def test_resyncing_the_active_version_writes_nothing(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))
    await mirror.activate(2)
    before = await mongo_database["storybench_prompts_meta"].find_one({})
    docs_before = [d async for d in mongo_database["prompts"].find({}, sort=[("_id", 1)])]
    assert await mirror.save(flat_set(2)) == "unchanged"
    await mirror.activate(2)
    assert await mongo_database["storybench_prompts_meta"].find_one({}) == before
    assert [d async for d in mongo_database["prompts"].find({}, sort=[("_id", 1)])] == docs_before
    assert await active_versions(mongo_database) == [2]


# -- storybench's own documents -------------------------------------------------------------


async def test_storybench_documents_are_kept_not_served_and_upgraded_in_place(mongo_database):
    created = datetime(2025, 5, 1, tzinfo=UTC)
    v1 = flat_set(1)
    legacy = storybench_document(v1, active=True, created_at=created)
    other = storybench_document(flat_set(1, text_suffix=" old"), active=False, created_at=created)
    await mongo_database["prompts"].insert_many([dict(legacy), dict(other)])
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    with pytest.raises(PromptSetNotFoundError, match="cannot be verified"):
        await mirror.get(1)
    with pytest.raises(PromptSetNotFoundError):
        await mirror.latest()
    assert await mirror.versions() == []
    with pytest.raises(PromptSetNotFoundError):
        await mirror.get_by_hash(v1.config_hash)

    assert await mirror.save(v1) == "new"  # the same content: upgrades storybench's document
    assert await mongo_database["prompts"].count_documents({}) == 2
    upgraded = await mongo_database["prompts"].find_one({"_id": legacy["_id"]})
    for field in ("sequences", "config_hash", "version", "created_at"):
        assert upgraded[field] == legacy[field]
    assert upgraded["is_active"]  # never touched by the upgrade (nx-27017 may read back 1)
    assert upgraded["directus_id"] == v1.directus_id
    assert (await mirror.get(1)).config_hash == v1.config_hash
    assert (await mirror.get_by_hash(v1.config_hash)).config_hash == v1.config_hash
    untouched = await mongo_database["prompts"].find_one({"_id": other["_id"]})
    assert untouched == other
    assert (await mirror.active()).config_hash == v1.config_hash


async def test_several_active_storybench_documents_settle_on_one(mongo_database):
    """storybench's racing syncs can leave several active documents and no activation_seq."""
    created = datetime(2025, 5, 1, tzinfo=UTC)
    docs = [
        storybench_document(flat_set(1), active=True, created_at=created),
        storybench_document(flat_set(2), active=True, created_at=created),
        storybench_document(flat_set(2, text_suffix=" x"), active=True, created_at=created),
    ]
    await mongo_database["prompts"].insert_many([dict(d) for d in docs])
    seen_by_storybench = (await storybench_reader(mongo_database))["_id"]
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(7))  # a cache write-through: it must not activate version 7
    active = [d async for d in mongo_database["prompts"].find({"is_active": True})]
    assert [d["_id"] for d in active] == [seen_by_storybench]
    for doc in docs:  # content and created_at of every legacy document unchanged
        stored = await mongo_database["prompts"].find_one({"_id": doc["_id"]})
        assert stored["sequences"] == doc["sequences"]
        assert stored["created_at"] == doc["created_at"]
    await mirror.activate(7)
    assert await active_versions(mongo_database) == [7]


async def test_a_real_activation_outranks_an_adopted_storybench_document(mongo_database):
    """Even one claimed before the adoption and stamped after it."""
    created = datetime(2025, 5, 1, tzinfo=UTC)
    docs = [storybench_document(flat_set(v), active=True, created_at=created) for v in (1, 2)]
    await mongo_database["prompts"].insert_many([dict(d) for d in docs])
    syncing, caching = (
        MongoMirror(database=mongo_database, kind=PROMPT_SETS),
        MongoMirror(database=mongo_database, kind=PROMPT_SETS),
    )
    await syncing.save(flat_set(5))
    await mongo_database["prompts"].update_many({}, {"$unset": {"activation_seq": ""}})
    seq = await syncing.active_set.claim()  # `sync` claimed its number for version 5...
    await caching.reconcile()  # ...a write-through elsewhere adopts storybench's document...
    assert len(await active_versions(mongo_database)) == 1
    await mongo_database["prompts"].update_one(  # ...and then the number is stamped
        {"_id": flat_set(5).config_hash}, {"$max": {"activation_seq": seq}}
    )
    assert await caching.reconcile() == 5
    assert await active_versions(mongo_database) == [5]


async def test_a_tampered_active_copy_hands_the_flag_to_a_servable_one(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    first, second = flat_set(2), flat_set(2, text_suffix=" b")
    await mirror.save(first)
    await mirror.activate(2)
    await mirror.save(second)
    assert (await storybench_reader(mongo_database))["_id"] == second.config_hash
    await tamper(mongo_database, second.config_hash)
    assert await mirror.reconcile() == 2
    active = [d["_id"] async for d in mongo_database["prompts"].find({"is_active": True})]
    assert active == [first.config_hash]  # the servable copy of the same version


async def test_documents_of_our_first_schema_are_served_and_kept(mongo_database):
    """0.1 wrote one document per version (ObjectId _id, datetimes, a unique version index)."""
    old = flat_set(1)
    synced = datetime(2025, 6, 1, tzinfo=UTC)
    document = {
        "_id": ObjectId(),
        "config_hash": old.config_hash,
        "content_hash": old.content_hash,
        "version": 1,
        "version_name": old.version_name,
        "directus_id": old.directus_id,
        "sequences": old.sequences_as_dicts(),
        "source_created_at": None,
        "source_updated_at": None,
        "fetched_at": synced,
        "synced_at": synced,
        "created_at": synced,
        "is_active": True,
        "activation_seq": 3,
        "schema_version": 1,
    }
    await mongo_database["prompts"].insert_one(dict(document))
    await mongo_database["prompts"].create_index([("version", pymongo.ASCENDING)], unique=True)
    await mongo_database["storybench_prompts_meta"].insert_one(
        {"_id": "activation:prompts", "seq": 3}
    )
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    assert (await mirror.get(1)).config_hash == old.config_hash
    assert await mirror.save(old) == "unchanged"
    edited = flat_set(1, text_suffix=" edited")
    assert await mirror.save(edited) == "updated"
    assert (await mirror.get(1)).config_hash == edited.config_hash
    assert (await mirror.get_by_hash(old.config_hash)).config_hash == old.config_hash
    kept = await mongo_database["prompts"].find_one({"_id": document["_id"]})
    assert kept["sequences"] == document["sequences"]
    assert kept["created_at"] == document["created_at"]
    # Version 1 stays the active version; its current copy carries the flag.
    assert [d["_id"] async for d in mongo_database["prompts"].find({"is_active": True})] == [
        edited.config_hash
    ]
    await mirror.save(flat_set(2))
    await mirror.activate(2)
    assert (await mongo_database["prompts"].find_one({"version": 2}))["activation_seq"] == 4


# -- withdrawal -----------------------------------------------------------------------------


async def test_withdrawal_marks_every_copy_and_keeps_them(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    for suffix in ("", " b", " c"):
        await mirror.save(flat_set(3, text_suffix=suffix))
    await mirror.save(flat_set(1))
    await mirror.activate(3)
    zero_seen = 0
    done = anyio.Event()

    async def reader() -> None:
        nonlocal zero_seen
        while not done.is_set():
            if await storybench_reader(mongo_database) is None:
                zero_seen += 1
            await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        assert await mirror.withdraw(3) is True
        done.set()
    assert zero_seen == 0
    copies = [d async for d in mongo_database["prompts"].find({"version": 3})]
    assert len(copies) == 3
    assert all(d.get("withdrawn_at") for d in copies)
    assert await active_versions(mongo_database) == [1]


# -- concurrency of first activations (what `warm` and `sync` do) ---------------------------


@pytest.mark.parametrize("seed", range(4))
async def test_first_saves_then_activation_end_on_the_highest(mongo_database, mongo_uri, seed):
    import random

    rng = random.Random(seed)
    clients = [AsyncMongoClient(mongo_uri, tz_aware=True) for _ in range(3)]
    versions = list(range(1, 7))

    async def run(mirror: MongoMirror, only_if_none: bool) -> None:
        order = versions[:]
        rng.shuffle(order)
        for v in order:
            for _ in range(rng.randrange(3)):
                await anyio.sleep(0)
            await mirror.save(flat_set(v))
        await mirror.activate(max(versions), only_if_none=only_if_none)

    try:
        mirrors = [MongoMirror(database=c[mongo_database.name], kind=PROMPT_SETS) for c in clients]
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, mirrors[0], True)  # warm
            tg.start_soon(run, mirrors[1], True)  # another warm
            tg.start_soon(run, mirrors[2], seed % 2 == 0)  # sync, or a third warm
    finally:
        for c in clients:
            await c.close()
    assert await active_versions(mongo_database) == [6]


# -- kinds ----------------------------------------------------------------------------------


async def test_for_kind_shares_the_connection_and_keeps_its_own_collection(nx_server):
    prompts = MongoMirror(
        nx_server.uri, database_name=f"sbp_kind_{time.monotonic_ns()}", kind=PROMPT_SETS
    )
    try:
        evaluations = prompts.for_kind(EVALUATION_SETS)
        assert evaluations.kind is EVALUATION_SETS
        await prompts.save(flat_set(1))
        await evaluations.save(flat_evaluation_set(1))
        await evaluations.save(flat_evaluation_set(2))
        await prompts.activate(1)
        await evaluations.activate(2)
        await evaluations.aclose()  # a sibling leaves the shared connection open
        assert (await prompts.get(1)).version == 1
        db = prompts._db
        assert await db["prompts"].count_documents({}) == 1
        assert await db["evaluation_criteria"].count_documents({}) == 2
        assert await active_versions(db, "evaluation_criteria") == [2]
        doc = await db["evaluation_criteria"].find_one({"version": 2})
        assert doc["criteria"] == flat_evaluation_set(2).body()["criteria"]
        assert (await evaluations.get(2)).config_hash == flat_evaluation_set(2).config_hash
        await prompts._client.drop_database(db.name)
    finally:
        await prompts.aclose()
    with pytest.raises(MirrorUnavailableError):
        await prompts.get(1)  # closed now


# -- errors ---------------------------------------------------------------------------------


async def test_bson_errors_on_writes_are_typed(mongo_database):
    # What a driver error on a write looks like if content the rules refuse ever got there.
    mirror = MongoMirror(database=mongo_database, kind=lax(PROMPT_SETS))
    nul_key = PromptSet(version=1, sequences={"a\x00b": (Prompt(name="p", text="t"),)})
    with pytest.raises(MirrorUnavailableError, match="InvalidDocument"):
        await mirror.save(nul_key)
    too_large = PromptSet(version=2, sequences={"S": (Prompt(name="p", text="x" * 17_000_000),)})
    with pytest.raises(MirrorUnavailableError, match="DocumentTooLarge"):
        await mirror.save(too_large)
    assert await mongo_database["prompts"].count_documents({}) == 0


async def test_an_integer_wider_than_bson_is_typed(mongo_database):
    # The content rules do not bound integers; BSON holds 8 bytes.
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    with pytest.raises(MirrorUnavailableError, match="8-byte"):
        await mirror.save(flat_set(1, directus_id=2**70))


@pytest.mark.parametrize(
    "error",
    [
        pymongo.errors.WriteError("refused", code=121),
        pymongo.errors.NetworkTimeout("timed out"),
        bson.errors.InvalidDocument("cannot encode"),
        bson.errors.InvalidBSON("bad bytes"),
    ],
    ids=["write-error", "network-timeout", "invalid-document", "invalid-bson"],
)
async def test_any_driver_error_is_typed(mongo_database, monkeypatch, error):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(mirror._collection, "insert_one", fail)
    monkeypatch.setattr(mirror._collection, "update_one", fail)
    with pytest.raises(MirrorUnavailableError):
        await mirror.save(flat_set(2))

    def fail_now(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(mirror._collection, "find", fail_now)
    with pytest.raises(MirrorUnavailableError):
        await mirror.get(1)
    with pytest.raises(MirrorUnavailableError):
        await mirror.latest()


async def test_stalled_mongodb_fails_within_the_socket_timeout(own_nx_server):
    mirror = MongoMirror(
        own_nx_server.uri, socket_timeout=1.0, server_selection_timeout=1.0, kind=PROMPT_SETS
    )
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
    mirror = MongoMirror(own_nx_server.uri, server_selection_timeout=0.5, kind=PROMPT_SETS)
    try:
        started = time.monotonic()
        with pytest.raises(MirrorUnavailableError):
            await mirror.latest()
        assert time.monotonic() - started < 2.5
        with pytest.raises(MirrorUnavailableError):
            await mirror.save(flat_set(1))
        with pytest.raises(MirrorUnavailableError):
            await mirror.withdraw(1)
        with pytest.raises(MirrorUnavailableError):
            await mirror.activate(1)
    finally:
        await mirror.aclose()


async def test_password_never_appears(own_nx_server):
    secret = "hunter2-pass"
    uri = f"mongodb://reader:{secret}@127.0.0.1:{own_nx_server.port}/?authSource=admin"
    own_nx_server.kill()
    mirror = MongoMirror(uri, server_selection_timeout=0.3, kind=PROMPT_SETS)
    try:
        assert secret not in repr(mirror)
        assert "reader:***@" in repr(mirror)
        assert secret not in repr(mirror.for_kind(EVALUATION_SETS))
        with pytest.raises(MirrorUnavailableError) as info:
            await mirror.get(1)
        assert secret not in str(info.value)
        assert info.value.__cause__ is None or secret not in str(info.value.__cause__)
    finally:
        await mirror.aclose()


@pytest.mark.parametrize(
    "options",
    [
        "tlsCertificateKeyFilePassword=hunter2-pass",
        "authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:hunter2-pass",
    ],
)
async def test_secrets_in_uri_options_never_appear(own_nx_server, options):
    secret = "hunter2-pass"
    uri = f"mongodb://127.0.0.1:{own_nx_server.port}/?{options}&serverSelectionTimeoutMS=300"
    own_nx_server.kill()
    mirror = MongoMirror(uri, server_selection_timeout=0.3, kind=PROMPT_SETS)
    try:
        assert secret not in repr(mirror)
        with pytest.raises(StorybenchPromptsError) as info:
            await mirror.get(1)
        assert secret not in str(info.value)
    finally:
        await mirror.aclose()


def test_missing_uri_names_the_variable(monkeypatch):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(ConfigurationError, match="MONGODB_URI"):
        MongoMirror(kind=PROMPT_SETS)


async def test_empty_mirror_has_no_active_set(mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    with pytest.raises(PromptSetNotFoundError):
        await mirror.active()
    assert await mirror.reconcile() is None
