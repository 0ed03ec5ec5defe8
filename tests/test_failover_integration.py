"""Failing over at Directus's first refusal, against a real socket that refuses and a real
Directus that is killed and comes back; and one probe at a time while it is down."""

import time

import anyio
import pytest

from devserver._process import free_port
from devserver.transport import CountingTransport
from storybench_prompts import (
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    DirectusSource,
    FileMirror,
    OriginState,
    RetryPolicy,
)
from tests.factories import flat_set

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.2, max_backoff=1.0)


async def test_a_refused_connection_serves_the_mirror_at_the_first_refusal(tmp_path):
    # How fast is benchmarks/failover.py's to measure (docs/performance.md: about 3 ms);
    # here, that the answer came before any retry: one request when it was served.
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(3))
    transport = CountingTransport()
    # Nothing listens on this loopback port: every connection is refused at once.
    source = DirectusSource(
        f"http://127.0.0.1:{free_port()}",
        "token",
        retry=RETRY,
        transport=transport,
        kind=PROMPT_SETS,
    )
    async with CachingRepository(source, mirror, policy=CachePolicy(fallback_after=2.0)) as repo:
        served = await repo.get(3)
        requests_when_served = transport.requests
        assert transport.first_failure_at() is not None
        assert served.provenance.source == "mirror"
        assert served.provenance.origin_error == "DirectusConnectionError"
        assert requests_when_served == 1
        # The same flight goes on retrying behind the caller, as the transport counts.
        with anyio.fail_after(10):
            while transport.requests < RETRY.max_attempts:
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        assert transport.requests == RETRY.max_attempts
        assert repo.status().state is OriginState.INTERRUPTED


@pytest.mark.directus
async def test_killed_directus_fails_over_at_once_probes_and_recovers(own_directus, tmp_path):
    transport = CountingTransport()
    source = DirectusSource(
        own_directus.url,
        own_directus.readonly_token,
        retry=RETRY,
        transport=transport,
        kind=PROMPT_SETS,
    )
    policy = CachePolicy(fallback_after=2.0, probe_initial=0.5, probe_max=1.0)
    async with CachingRepository(
        source, FileMirror(tmp_path, kind=PROMPT_SETS), policy=policy
    ) as repo:
        await repo.warm()
        own_directus.kill()
        repo.invalidate()
        started = time.monotonic()
        served = await repo.get(2)
        assert time.monotonic() - started < 0.5
        assert served.provenance.source == "mirror"
        assert repo.status().state is OriginState.INTERRUPTED

        # 100 callers over the 3 versions for 3 s: Directus is asked by one probe at a time.
        before = transport.requests
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(repo.get, 1 + i % 3)
            await anyio.sleep(0.05)
        attempts = transport.requests - before
        print(f"{attempts} Directus attempts in 3 s of 100-caller rounds while it was down")
        # Four from the flight that was already retrying, then at most one per probe interval.
        assert attempts <= RETRY.max_attempts + 3.0 / (policy.probe_initial * 0.5) + 1

        own_directus.restart()
        with anyio.fail_after(10):
            while repo.status().state is not OriginState.VALID:
                await repo.get(1)  # served from a copy; a due probe notices the recovery
                await anyio.sleep(0.1)
        repo.invalidate()
        assert (await repo.get(1)).provenance.source == "directus"
