"""All benchmarks, side by side with their baselines, in one run against real servers.

    .venv/bin/python -m benchmarks.run            # all five
    .venv/bin/python -m benchmarks.run hit sync   # some of: hit cold stampede sync fire
    FIRE_SECONDS=20 ...                           # length of the under-fire run

Starts its own Directus (seeded with 50 storybench-like versions) and nx-27017, prints each
result with its ratio to the baseline, and stops them. Figures go to docs/performance.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from cachetools import TTLCache
from pymongo import AsyncMongoClient, monitoring

from devserver.directus import DirectusServer, template_db
from devserver.mongo import MongoServer
from devserver.sample_data import version_payload
from devserver.transport import CountingTransport
from storybench_prompts import (
    CachePolicy,
    CachingRepository,
    DirectusSource,
    DirectusTimeouts,
    InMemoryMirror,
    MongoMirror,
    PromptSet,
    RetryPolicy,
    convert_version,
    parse_version,
    sync_versions,
)
from storybench_prompts.content.kinds import PROMPT_SETS

VERSIONS = 50


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.3f} µs"


class WriteCounter(monitoring.CommandListener):
    """Counts documents written (inserted + modified + upserted) from the server's replies."""

    def __init__(self) -> None:
        self.written = 0
        self.commands = 0
        self._pending: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "delete"):
            self._pending[event.request_id] = event.command_name

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        name = self._pending.pop(event.request_id, None)
        if name is None:
            return
        self.commands += 1
        reply = event.reply
        if name == "insert":
            self.written += int(reply.get("n", 0))
        elif name == "update":
            self.written += int(reply.get("nModified", 0)) + len(reply.get("upserted", []))
        else:
            self.written += int(reply.get("n", 0))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._pending.pop(event.request_id, None)


# -- 1. hit path --------------------------------------------------------------------------


async def bench_hit(server: DirectusServer, mongo: MongoServer) -> dict[str, Any]:
    """A fresh hit beside its floor, with OpenTelemetry off and on (an SDK meter provider
    with an in-memory reader: the hit is one counter add on a real instrument)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from storybench_prompts.observability.otel import OTelHook

    floor_cache: TTLCache[int, PromptSet] = TTLCache(maxsize=512, ttl=3600)
    reader = InMemoryMetricReader()
    otel = OTelHook(MeterProvider(metric_readers=[reader]), TracerProvider())
    source: DirectusSource[PromptSet] = DirectusSource(
        server.url, server.readonly_token, kind=PROMPT_SETS
    )
    with_otel_source: DirectusSource[PromptSet] = DirectusSource(
        server.url, server.readonly_token, kind=PROMPT_SETS
    )
    plain_repo: CachingRepository[PromptSet] = CachingRepository(
        source, InMemoryMirror(kind=PROMPT_SETS)
    )
    otel_repo: CachingRepository[PromptSet] = CachingRepository(
        with_otel_source, InMemoryMirror(kind=PROMPT_SETS), hooks=[otel]
    )
    async with plain_repo as repo, otel_repo as repo_otel:
        prompt_set = await repo.get(7)
        await repo_otel.get(7)
        floor_cache[7] = prompt_set

        async def floor(version: int) -> PromptSet:
            return floor_cache[version]

        async def batch(fn: Callable[[int], Awaitable[PromptSet]], n: int = 2000) -> float:
            start = time.perf_counter()
            for _ in range(n):
                await fn(7)
            return (time.perf_counter() - start) / n

        ours: list[float] = []
        ours_otel: list[float] = []
        base: list[float] = []
        for _ in range(10):  # warm-up
            await batch(repo.get)
            await batch(repo_otel.get)
            await batch(floor)
        for _ in range(200):  # interleaved, so all three see the same machine state
            ours.append(await batch(repo.get))
            ours_otel.append(await batch(repo_otel.get))
            base.append(await batch(floor))
    count = otel.hit_counter("prompts")
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        count(1)
    one_add = (time.perf_counter() - start) / n
    ratio = statistics.median(ours) / statistics.median(base)
    ratio_otel = statistics.median(ours_otel) / statistics.median(base)
    print(
        f"  floor (async fn reading the same TTLCache): median {us(statistics.median(base))}, "
        f"p99 {us(pct(base, 0.99))}"
    )
    print(
        f"  ours, OpenTelemetry off (fresh hit):       median {us(statistics.median(ours))}, "
        f"p99 {us(pct(ours, 0.99))}"
    )
    print(
        f"  ours, OpenTelemetry on (fresh hit):        median {us(statistics.median(ours_otel))}"
        f", p99 {us(pct(ours_otel, 0.99))}"
    )
    print(f"  of which one counter add on the SDK (what on adds per hit): {us(one_add)}")
    print(
        f"  ratio ours/floor: off {ratio:.2f}x, on {ratio_otel:.2f}x (goal <= 1.3x off); "
        f"p99 off {pct(ours, 0.99) / pct(base, 0.99):.2f}x"
    )
    return {"ratio": ratio, "ratio_otel": ratio_otel}


# -- 2. cold start ------------------------------------------------------------------------


async def bench_cold(server: DirectusServer, mongo: MongoServer) -> dict[str, Any]:
    fallback_after = 0.5
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.uri)
    db = client[f"bench_{uuid.uuid4().hex[:8]}"]
    mirror = MongoMirror(database=db, kind=PROMPT_SETS)
    source = DirectusSource(server.url, server.readonly_token, kind=PROMPT_SETS)
    policy = CachePolicy(fallback_after=fallback_after)
    times: list[float] = []
    async with CachingRepository(source, mirror, policy=policy, close_mirror=False) as repo:
        await repo.warm(range(1, 11))
        with server.paused():
            for i in range(30):
                repo.invalidate()
                started = time.perf_counter()
                served = await repo.get(1 + i % 10)
                times.append(time.perf_counter() - started)
                assert served.provenance is not None
                assert served.provenance.hedged
            # storybench's way: a direct call that waits for its read timeout. Measured with a
            # short timeout to show it waits the whole of it; the 60 s default is computed.
            short = 2.0
            direct = DirectusSource(
                server.url,
                server.readonly_token,
                timeouts=DirectusTimeouts(read=short),
                retry=RetryPolicy(max_attempts=1),
                kind=PROMPT_SETS,
            )
            started = time.perf_counter()
            try:
                await direct.get(1)
            except Exception as exc:
                waited = time.perf_counter() - started
                kind = type(exc).__name__
            await direct.aclose()
    await client.drop_database(db.name)
    await client.close()
    p50, p99 = statistics.median(times), pct(times, 0.99)
    print(
        f"  Directus stalled (SIGSTOP), mirror warm, fallback_after={fallback_after} s, "
        f"{len(times)} cold gets"
    )
    print(f"  ours: p50 {ms(p50)}, p99 {ms(p99)} (goal p99 <= {ms(fallback_after + 0.05)})")
    print(f"  storybench's way with a {short:g} s read timeout: waited {waited:.2f} s, then {kind}")
    print(f"  with storybench's 60 s timeout: 60 s / ours p99 = {60 / p99:.0f}x slower")
    return {"p99": p99}


# -- 3. stampede --------------------------------------------------------------------------


async def bench_stampede(server: DirectusServer, mongo: MongoServer) -> dict[str, Any]:
    single: list[float] = []
    for _ in range(5):
        transport = CountingTransport()
        counted: DirectusSource[PromptSet] = DirectusSource(
            server.url, server.readonly_token, transport=transport, kind=PROMPT_SETS
        )
        async with CachingRepository(counted) as repo:
            started = time.perf_counter()
            await repo.get(3)
            single.append(time.perf_counter() - started)
    totals: list[float] = []
    requests: list[int] = []
    for _ in range(5):
        transport = CountingTransport()
        source = DirectusSource(
            server.url, server.readonly_token, transport=transport, kind=PROMPT_SETS
        )
        async with CachingRepository(source) as repo:
            started = time.perf_counter()
            results = await asyncio.gather(*(repo.get(3) for _ in range(1000)))
            totals.append(time.perf_counter() - started)
            requests.append(transport.requests)
            assert len({r.config_hash for r in results}) == 1
    # The harness alone: 1,000 coroutines waiting for one fetch shared by hand.
    harness: list[float] = []
    for _ in range(5):
        async with DirectusSource(server.url, server.readonly_token, kind=PROMPT_SETS) as plain:
            done = asyncio.Event()

            async def fetch_once(
                source: DirectusSource[PromptSet] = plain, event: asyncio.Event = done
            ) -> None:
                await source.get(3)
                event.set()

            async def waiter(event: asyncio.Event = done) -> None:
                await event.wait()

            started = time.perf_counter()
            await asyncio.gather(fetch_once(), *(waiter() for _ in range(999)))
            harness.append(time.perf_counter() - started)
    one = statistics.median(single)
    total = statistics.median(totals)
    floor = statistics.median(harness)
    print(
        f"  1,000 concurrent cold get(3) via asyncio.gather: Directus requests per run {requests}"
        f" (goal 1), median {ms(total)} in all"
    )
    print(f"  one single cold get(3): median {ms(one)}")
    print(f"  harness floor (1,000 coroutines sharing one hand-made fetch): median {ms(floor)}")
    print(
        f"  ratio stampede/single: {total / one:.2f}x (goal <= 1.2x); "
        f"stampede/harness floor: {total / floor:.2f}x"
    )
    return {"requests": max(requests), "ratio": total / one}


# -- 4. sync ------------------------------------------------------------------------------


async def storybench_sync(server: DirectusServer, db: Any, versions: list[int]) -> int:
    """storybench's way: one nested fetch per version (new connection each time), then
    deactivate every document and insert the new one."""
    requests = 0
    for v in versions:
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {server.readonly_token}"}, timeout=60
        ) as http:
            r = await http.get(
                f"{server.url}/items/prompt_set_versions",
                params={
                    "filter[status][_eq]": "published",
                    "filter[version_number][_eq]": str(v),
                    "fields": PROMPT_SETS.nested_fields,
                },
            )
            requests += 1
        ps = convert_version(parse_version(r.json()["data"][0]))
        await db["prompts"].update_many({}, {"$set": {"is_active": False}})
        await db["prompts"].insert_one(
            {
                "config_hash": ps.config_hash,
                "version": ps.version,
                "sequences": ps.sequences_as_dicts(),
                "created_at": time.time(),
                "is_active": True,
            }
        )
    return requests


async def bench_sync(server: DirectusServer, mongo: MongoServer) -> dict[str, Any]:
    counter = WriteCounter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo.uri, event_listeners=[counter]
    )
    db = client[f"bench_{uuid.uuid4().hex[:8]}"]
    rows = []
    for run in ("first", "second"):
        transport = CountingTransport()
        source = DirectusSource(
            server.url, server.readonly_token, transport=transport, kind=PROMPT_SETS
        )
        mirror = MongoMirror(database=db, kind=PROMPT_SETS)
        counter.written = 0
        started = time.perf_counter()
        # As `sync --all` does: every published version, then activate the latest.
        results = await sync_versions(source, mirror, None, concurrency=4, activate=VERSIONS)
        elapsed = time.perf_counter() - started
        await source.aclose()
        outcomes = {r.outcome for r in results}
        rows.append((run, transport.requests, elapsed, counter.written, outcomes, len(results)))
    sb_db = client[f"bench_sb_{uuid.uuid4().hex[:8]}"]
    sb = []
    for run in ("first", "second"):
        counter.written = 0
        started = time.perf_counter()
        requests = await storybench_sync(server, sb_db, list(range(1, VERSIONS + 1)))
        sb.append((run, requests, time.perf_counter() - started, counter.written))
    for name in (db.name, sb_db.name):
        await client.drop_database(name)
    await client.close()
    for run, requests, elapsed, written, outcomes, n in rows:
        print(
            f"  ours        sync --all ({run} run): {n} versions, {requests} Directus requests, "
            f"{elapsed:.2f} s, {written} documents written, outcomes {sorted(outcomes)}"
        )
    for run, requests, elapsed, written in sb:
        print(
            f"  storybench  per-version sync ({run} run): {requests} requests, {elapsed:.2f} s, "
            f"{written} documents written"
        )
    print(
        f"  second run written: ours {rows[1][3]} (goal 0), storybench {sb[1][3]}; "
        f"wall time ours/storybench {rows[0][2] / sb[0][2]:.2f}x (first), "
        f"{rows[1][2] / sb[1][2]:.2f}x (second)"
    )
    return {"second_written": rows[1][3]}


# -- 5. under fire ------------------------------------------------------------------------


async def bench_fire(server: DirectusServer, mongo: MongoServer) -> dict[str, Any]:
    seconds = float(os.environ.get("FIRE_SECONDS", "20"))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.uri)
    db = client[f"bench_{uuid.uuid4().hex[:8]}"]
    mirror = MongoMirror(database=db, kind=PROMPT_SETS)
    source = DirectusSource(
        server.url,
        server.readonly_token,
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.05),
        kind=PROMPT_SETS,
    )
    # Short TTLs so the run keeps going back to Directus while it dies and returns.
    policy = CachePolicy(
        pinned_ttl=0.5, latest_ttl=0.5, max_stale=0.5, fallback_after=0.5, fallback_ttl=0.5
    )
    latencies: list[float] = []
    failures: list[str] = []
    async with CachingRepository(source, mirror, policy=policy, close_mirror=False) as repo:
        await repo.warm(range(1, 11))
        deadline = time.monotonic() + seconds

        async def worker(i: int) -> None:
            n = i
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    await repo.get(1 + n % 10)
                    latencies.append(time.perf_counter() - started)
                except Exception as exc:
                    failures.append(type(exc).__name__)
                n += 1
                await anyio.sleep(0)

        async def chaos() -> None:
            for _ in range(2):
                await anyio.sleep(seconds / 5)
                await anyio.to_thread.run_sync(server.kill)
                await anyio.sleep(seconds / 10)
                await anyio.to_thread.run_sync(server.restart)

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(worker, i)
            tg.start_soon(chaos)
        stats = repo.stats()
    await client.drop_database(db.name)
    await client.close()
    ops = len(latencies)
    print(f"  100 tasks x {seconds:g} s over 10 versions, Directus killed and restarted twice")
    print(
        f"  {ops / seconds:,.0f} ops/s, p50 {ms(statistics.median(latencies))}, "
        f"p99 {ms(pct(latencies, 0.99))}, failed lookups {len(failures)} (goal 0)"
    )
    print(
        f"  stale serves {stats.stale_serves}, mirror fallbacks {stats.mirror_fallbacks}, "
        f"hedged {stats.hedged_serves}, origin errors {dict(stats.origin_errors)}"
    )
    return {"failures": len(failures)}


BENCHES = {
    "hit": ("1. hit path", bench_hit),
    "cold": ("2. cold start", bench_cold),
    "stampede": ("3. stampede", bench_stampede),
    "sync": ("4. sync", bench_sync),
    "fire": ("5. under fire", bench_fire),
}


def seed(server: DirectusServer) -> None:
    for v in range(1, VERSIONS + 1):
        server.create_version(version_payload(v, variant=f" (v{v})"))


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHES)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )
    server = DirectusServer.start_from(template_db())
    mongo = MongoServer.start()
    try:
        seed(server)
        for key in chosen:
            title, bench = BENCHES[key]
            print(f"\n{title}", flush=True)
            anyio.run(bench, server, mongo)
    finally:
        server.stop()
        mongo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
