"""A database storybench already uses, taken over with no migration step, under load.

storybench's own `sync-prompts` leaves several documents per version and, after racing runs,
several active ones, all with ObjectId ids and no Directus id. Our saves and activations run
from several tasks and a second process while storybench's reader polls: the reader must never
find nothing, every document storybench wrote must keep its content and creation date, and at
rest exactly one document is active.
"""

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from storybench_prompts import PROMPT_SETS, MongoMirror, PromptSet
from tests.factories import flat_set

pytestmark = [pytest.mark.anyio, pytest.mark.mongodb]

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import json, random, sys, anyio
from pymongo import AsyncMongoClient
from storybench_prompts import PROMPT_SETS, MongoMirror
from tests.factories import flat_set

async def main(uri, db_name, seed):
    rng = random.Random(seed)
    client = AsyncMongoClient(uri, tz_aware=True)
    saved = []
    try:
        mirror = MongoMirror(database=client[db_name], kind=PROMPT_SETS)
        for i in range(12):
            v = rng.randint(1, 5)
            content = flat_set(v, text_suffix=rng.choice(["", f" p{i}"]))
            await mirror.save(content)
            saved.append(content.config_hash)
            if rng.random() < 0.4:
                await mirror.activate(v)
    finally:
        await client.close()
    print(json.dumps(saved))

anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
"""


def storybench_document(content: PromptSet, *, active: bool, days: int) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "config_hash": content.config_hash,
        "version": content.version,
        "sequences": content.sequences_as_dicts(),
        "created_at": datetime(2025, 5, 1, tzinfo=UTC) + timedelta(days=days),
        "is_active": active,
    }


LEGACY = [
    (flat_set(1), False),
    (flat_set(1, text_suffix=" old"), True),
    (flat_set(2), True),
    (flat_set(2, text_suffix=" x"), True),
    (flat_set(3), True),
    (flat_set(3, text_suffix=" older"), False),
]


async def test_taking_over_storybench_database_under_load(mongo_database, mongo_uri):
    collection = mongo_database["prompts"]
    legacy = [storybench_document(c, active=a, days=i) for i, (c, a) in enumerate(LEGACY)]
    await collection.insert_many([dict(d) for d in legacy])

    saved: set[str] = set()
    reads = 0
    zero_seen = 0
    done = anyio.Event()

    async def reader() -> None:
        nonlocal reads, zero_seen
        while not done.is_set():
            reads += 1
            if await collection.find_one({"is_active": True}) is None:
                zero_seen += 1
            await anyio.sleep(0)

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            mirror = MongoMirror(database=client[mongo_database.name], kind=PROMPT_SETS)
            for i in range(10):
                v = rng.randint(1, 5)
                content = flat_set(v, text_suffix=rng.choice(["", " old", f" t{seed}.{i}"]))
                await mirror.save(content)
                saved.add(content.config_hash)
                roll = rng.random()
                if roll < 0.3:
                    await mirror.activate(v)
                elif roll < 0.5:
                    await mirror.activate(v, only_if_none=True)
                for _ in range(rng.randrange(3)):
                    await anyio.sleep(0)
        finally:
            await client.close()

    def other_process(seed: int) -> list[str]:
        done_proc = subprocess.run(
            [sys.executable, "-c", WRITER, mongo_uri, mongo_database.name, str(seed)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=True,
        )
        return list(json.loads(done_proc.stdout.strip().splitlines()[-1]))

    async def process_writer(seed: int) -> None:
        saved.update(await anyio.to_thread.run_sync(other_process, seed))

    async with anyio.create_task_group() as readers:
        for _ in range(2):
            readers.start_soon(reader)
        async with anyio.create_task_group() as writers:
            writers.start_soon(process_writer, 99)
            for seed in range(3):
                writers.start_soon(writer, seed)
        done.set()

    assert reads > 50
    assert zero_seen == 0, "storybench's reader found no active document"

    # At rest (no reconcile called here): exactly one active, the current copy of the
    # version activated last.
    active = [d async for d in collection.find({"is_active": True})]
    assert len(active) == 1
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    top = await collection.find_one({"activation_seq": {"$gt": 0}}, sort=[("activation_seq", -1)])
    assert active[0]["version"] == top["version"]
    assert active[0]["config_hash"] == await mirror.stored_hash(top["version"])

    # Every document storybench wrote keeps its content and creation date (ids unchanged).
    for doc in legacy:
        stored = await collection.find_one({"_id": doc["_id"]})
        for field in ("config_hash", "version", "sequences", "created_at"):
            assert stored[field] == doc[field], (doc["_id"], field)

    # get(v) is the servable copy synced last; every hash saved is readable by hash.
    for v in range(1, 6):
        copies = [
            d
            async for d in collection.find(
                {"version": v, "schema_version": {"$exists": True}}, sort=[("sync_order", -1)]
            )
        ]
        if copies:
            assert (await mirror.get(v)).config_hash == copies[0]["config_hash"]
    for config_hash in saved:
        assert (await mirror.get_by_hash(config_hash)).config_hash == config_hash
    # One document per hash: storybench's upgraded in place, never a second copy of it.
    hashes = [d["config_hash"] async for d in collection.find({})]
    assert len(hashes) == len(set(hashes))

    # And the last sync wins, whatever copy it is.
    await mirror.save(flat_set(2, text_suffix=" x"))  # storybench's own content of version 2
    assert (await mirror.get(2)).config_hash == flat_set(2, text_suffix=" x").config_hash
    await mirror.activate(2)
    active = [d async for d in collection.find({"is_active": True})]
    assert [d["config_hash"] for d in active] == [flat_set(2, text_suffix=" x").config_hash]


async def test_a_storybench_document_with_a_whole_double_version_is_taken_over(mongo_database):
    """mongosh and JavaScript write numbers as doubles: version 2.0 is version 2."""
    legacy = storybench_document(flat_set(2), active=True, days=0)
    legacy["version"] = 2.0
    await mongo_database["prompts"].insert_one(legacy)
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    for outcome in ("new", "unchanged"):  # every sync writes, none fails
        assert [await mirror.save(flat_set(v)) for v in (1, 3)] == [outcome, outcome]
        await mirror.activate(3, only_if_none=True)  # storybench's active set is kept
        active = [d async for d in mongo_database["prompts"].find({"is_active": True})]
        assert [d["_id"] for d in active] == [legacy["_id"]]
    await mirror.activate(3)
    active = [d async for d in mongo_database["prompts"].find({"is_active": True})]
    assert [(d["version"], d["config_hash"]) for d in active] == [(3, flat_set(3).config_hash)]


async def test_a_hand_made_active_document_naming_no_version_gives_way_to_a_set(mongo_database):
    await mongo_database["prompts"].insert_one(
        {"_id": "handmade", "version": "three", "is_active": True}
    )
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    assert [await mirror.save(flat_set(v)) for v in (1, 2)] == ["new", "new"]
    await mirror.activate(2, only_if_none=True)  # what a first sync does
    active = [d async for d in mongo_database["prompts"].find({"is_active": True})]
    assert [d["version"] for d in active] == [2]  # storybench's reader finds the set
    assert await mongo_database["prompts"].find_one({"_id": "handmade"}) == {
        "_id": "handmade",
        "version": "three",
        "is_active": False,
    }
