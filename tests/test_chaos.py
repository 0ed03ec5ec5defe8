"""Chaos, bounded in time: Directus dies and returns under load; two syncs race. Afterwards
the mirror must be consistent: every version once, exactly one active, hashes as in Directus."""

import os
import subprocess
import sys
import time
from typing import Any

import anyio
import pytest

from storybench_prompts import (
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    DirectusSource,
    MongoMirror,
    RetryPolicy,
)

pytestmark = [pytest.mark.anyio, pytest.mark.directus, pytest.mark.mongodb]


async def assert_consistent(db: Any, server, expected_active: int | None = None) -> None:
    docs = [d async for d in db["prompts"].find({})]
    versions = sorted(d["version"] for d in docs)
    async with DirectusSource(server.url, server.readonly_token, kind=PROMPT_SETS) as source:
        published = [i.version for i in await source.versions()]
        expected = {v: (await source.get(v)).config_hash for v in published}
    assert versions == published  # every version present, once
    active = [d["version"] for d in docs if d["is_active"]]
    assert len(active) == 1  # exactly one active
    if expected_active is not None:
        assert active == [expected_active]
    assert {d["version"]: d["config_hash"] for d in docs} == expected


async def test_under_fire_no_failed_lookups_and_a_consistent_mirror(own_directus, mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    source = DirectusSource(
        own_directus.url,
        own_directus.readonly_token,
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.05),
        kind=PROMPT_SETS,
    )
    policy = CachePolicy(
        pinned_ttl=0.3, latest_ttl=0.3, max_stale=0.3, fallback_after=0.3, fallback_ttl=0.3
    )
    failures: list[BaseException] = []
    served = 0
    async with CachingRepository(source, mirror, policy=policy, close_mirror=False) as repo:
        await repo.warm()
        deadline = time.monotonic() + 8

        async def worker(i: int) -> None:
            nonlocal served
            while time.monotonic() < deadline:
                try:
                    await repo.get(1 + i % 3)
                    served += 1
                except Exception as exc:
                    failures.append(exc)
                await anyio.sleep(0.001)

        async def chaos() -> None:
            await anyio.sleep(1.5)
            await anyio.to_thread.run_sync(own_directus.kill)
            await anyio.sleep(1.5)
            await anyio.to_thread.run_sync(own_directus.restart)

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(worker, i)
            tg.start_soon(chaos)
        assert repo.stats().origin_errors  # Directus really was down during the run
    assert failures == []
    assert served > 1000
    await assert_consistent(mongo_database, own_directus)


def test_two_sync_processes_at_once(directus, nx_server, unique_db_name):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRECTUS_", "MONGODB_"))}
    env |= {
        "DIRECTUS_URL": directus.url,
        "DIRECTUS_TOKEN": directus.readonly_token,
        "MONGODB_URI": nx_server.uri,
        "STORYBENCH_PROMPTS_MONGODB_DATABASE": unique_db_name,
        "STORYBENCH_PROMPTS_CONCURRENCY": "3",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "storybench_prompts", "sync", "--all"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    async def check() -> None:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(nx_server.uri)
        try:
            # Both syncs activate the latest published version.
            await assert_consistent(client[unique_db_name], directus, expected_active=3)
        finally:
            await client.drop_database(unique_db_name)
            await client.close()

    anyio.run(check)
