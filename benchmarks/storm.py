"""No storm against a failing Directus, and recovery noticed within one probe interval.

    .venv/bin/python -m benchmarks.storm [callers] [seconds]

A real Directus with 10 published versions is read once (cache and file mirror warm), the
cache is emptied, and Directus is restarted on the same port and data with its overload guard
tripped, so it answers every request 503 with Retry-After. 100 callers (default) then read
the 10 versions in a loop for 3 s; every request the library sends is counted at its transport
(the goal: at most 10, one per key before the outage is known, then one probe at a time).
Then Directus is restarted healthy; the callers go on, and the time from its first 200 to the
cache's state turning ``valid`` is measured against the probe interval.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter

import anyio
import anyio.to_thread
import httpx

from devserver.directus import DirectusServer, template_db
from devserver.sample_data import version_payload
from devserver.transport import CountingTransport
from storybench_prompts import (
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    DirectusSource,
    FileMirror,
    OriginState,
    PromptSet,
)

PRESSURE = {
    "PRESSURE_LIMITER_ENABLED": "true",
    "PRESSURE_LIMITER_MAX_MEMORY_RSS": "1",
    "PRESSURE_LIMITER_RETRY_AFTER": "7",
}
KEYS = 10


def restart(server: DirectusServer, *, pressure: bool) -> DirectusServer:
    server.kill()
    return DirectusServer.start_from(
        server.db_file,
        copy=False,
        port=server.port,
        env_overrides=PRESSURE if pressure else None,
        ready_statuses=frozenset({200, 503}) if pressure else frozenset({200}),
    )


def wait_status(url: str, status: int, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/server/ping", timeout=2).status_code == status:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"Directus never answered {status}")


async def run(callers: int, seconds: float) -> int:
    server = DirectusServer.start_from(template_db())
    try:
        for v in range(1, KEYS + 1):
            server.create_version(version_payload(v, variant=f" (v{v})"))
        transport = CountingTransport()
        source: DirectusSource[PromptSet] = DirectusSource(
            server.url, server.readonly_token, transport=transport, kind=PROMPT_SETS
        )
        policy = CachePolicy()  # the defaults, as build_repository() has them
        outcomes: Counter[str] = Counter()
        with tempfile.TemporaryDirectory() as mirror_dir:
            repo: CachingRepository[PromptSet] = CachingRepository(
                source, FileMirror(mirror_dir, kind=PROMPT_SETS), policy=policy
            )
            async with repo:
                await repo.warm(range(1, KEYS + 1))
                await repo.drain()
                repo.invalidate()
                server = await anyio.to_thread.run_sync(lambda: restart(server, pressure=True))
                wait_status(server.url, 503)
                stop = anyio.Event()

                async def caller(i: int) -> None:
                    n = i
                    while not stop.is_set():
                        try:
                            served = await repo.get(1 + n % KEYS)
                            outcomes[served.provenance.source if served.provenance else "?"] += 1
                        except Exception as exc:  # counted, never raised
                            outcomes[type(exc).__name__] += 1
                        n += 1
                        await anyio.sleep(0.001)

                async with anyio.create_task_group() as tg:
                    before = transport.requests
                    for i in range(callers):
                        tg.start_soon(caller, i)
                    await anyio.sleep(seconds)
                    storm = transport.requests - before
                    print(
                        f"  {callers} callers over {KEYS} versions, Directus answering 503 "
                        f"for {seconds:g} s: {storm} requests (goal <= {KEYS}); answers "
                        f"{dict(outcomes)}; state {repo.status().state.value}"
                    )
                    server = await anyio.to_thread.run_sync(lambda: restart(server, pressure=False))
                    answering = wait_status(server.url, 200)
                    with anyio.fail_after(60):
                        while repo.status().state is not OriginState.VALID:
                            await anyio.sleep(0.005)
                    noticed = time.monotonic() - answering
                    stop.set()
                print(
                    f"  recovery noticed {noticed:.2f} s after Directus answered again "
                    f"(probe interval at most {policy.probe_max:g} s)"
                )
        return 0 if storm <= KEYS and noticed <= policy.probe_max else 1
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    callers = int(argv[0]) if argv else 100
    seconds = float(argv[1]) if len(argv) > 1 else 3.0
    return anyio.run(run, callers, seconds)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
