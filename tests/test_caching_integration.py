"""The caching repository against the real Directus and the real wire-protocol MongoDB."""

import time

import anyio
import pytest

from devserver.transport import CountingTransport
from storybench_prompts import (
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    DirectusConnectionError,
    DirectusServerError,
    DirectusSource,
    InMemoryMirror,
    MongoMirror,
    OriginState,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
    RetryPolicy,
)
from tests.factories import flat_set

pytestmark = [pytest.mark.anyio, pytest.mark.directus, pytest.mark.mongodb]

QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


def edit_prompt_text(server, version: int) -> None:
    with server.admin() as c:
        prompt = c.get(
            "/items/prompts",
            params={"filter[text][_contains]": f"(v{version})", "limit": "1", "fields": "id,text"},
        ).json()["data"][0]
    server.update_item("prompts", prompt["id"], {"text": prompt["text"] + " edited"})


async def wait_until(predicate, timeout: float = 15.0) -> None:
    with anyio.fail_after(timeout):
        while not await predicate():
            await anyio.sleep(0.05)


async def test_stalled_directus_is_hedged_with_the_mirror_then_refreshed(
    own_directus, mongo_database
):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    source = DirectusSource(
        own_directus.url, own_directus.readonly_token, retry=QUICK, kind=PROMPT_SETS
    )
    policy = CachePolicy(fallback_after=0.5)
    async with CachingRepository(source, mirror, policy=policy, close_mirror=False) as repo:
        await repo.warm([1])
        old_hash = await mirror.stored_hash(1)
        repo.invalidate()
        edit_prompt_text(own_directus, 1)
        with own_directus.paused():
            started = time.monotonic()
            served = await repo.get(1)
            elapsed = time.monotonic() - started
        assert served.provenance.source == "mirror"
        assert served.provenance.hedged is True
        assert served.config_hash == old_hash
        assert elapsed < policy.fallback_after + 0.5  # the mirror read, on a loaded CI machine

        async def refreshed() -> bool:
            return await mirror.stored_hash(1) not in (None, old_hash)

        await wait_until(refreshed)  # the fetch that was stalled landed and wrote through
        fresh = await repo.get(1)
        assert fresh.provenance.source == "cache"
        assert fresh.config_hash == await mirror.stored_hash(1)
        assert repo.stats().hedged_serves == 1


async def test_directus_under_pressure_is_retried_then_the_mirror_serves(directus_under_pressure):
    # What a Directus that has just woken up (or is overloaded) really sends: 503 with its
    # own error body and a Retry-After header.
    server = directus_under_pressure
    transport = CountingTransport()
    # Honour the server's 7 s only up to 10 ms, so the test does not wait it out.
    retry = RetryPolicy(max_attempts=3, max_retry_after=0.01)
    mirrored = flat_set(1)
    source = DirectusSource(
        server.url, server.readonly_token, retry=retry, transport=transport, kind=PROMPT_SETS
    )
    async with CachingRepository(source, InMemoryMirror([mirrored], kind=PROMPT_SETS)) as repo:
        with pytest.raises(DirectusServerError) as info:
            await source.get(1)
        assert info.value.status == 503
        assert info.value.retry_after == 7.0
        assert "Under pressure" in str(info.value)
        assert transport.requests == 3  # every attempt the policy allows, then give up

        served = await repo.get(1)
        assert served.provenance.source == "mirror"
        assert served.config_hash == mirrored.config_hash
        status = repo.status()
        assert status.state is OriginState.INTERRUPTED
        assert status.last_error is not None
        assert "503" in status.last_error
        # Served at the first refused attempt, while the same fetch went on retrying.
        assert served.provenance.origin_error == "DirectusServerError"
        assert repo.stats().failovers == 1


async def test_killed_directus_keeps_serving_and_recovers(own_directus, mongo_database):
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    source = DirectusSource(
        own_directus.url, own_directus.readonly_token, retry=QUICK, kind=PROMPT_SETS
    )
    async with CachingRepository(source, mirror, close_mirror=False) as repo:
        await repo.warm([1, 2])
        repo.invalidate(2)
        assert (await repo.get(1)).provenance.source == "cache"
        own_directus.kill()

        assert (await repo.get(1)).provenance.source == "cache"  # fresh entry: no origin call
        from_mirror = await repo.get(2)
        assert from_mirror.provenance.source == "mirror"
        with pytest.raises(PromptSetUnavailableError) as info:
            await repo.get(99)
        assert [type(c) for c in info.value.causes] == [
            DirectusConnectionError,
            PromptSetNotFoundError,
        ]
        assert repo.status().state is OriginState.INTERRUPTED

        own_directus.restart()
        # Copies are served while Directus is known to be down; a due probe notices it is back.
        with anyio.fail_after(10):
            while repo.status().state is not OriginState.VALID:
                repo.invalidate(1)  # a fresh hit asks nothing of Directus; a miss may probe
                await repo.get(1)
                await anyio.sleep(0.05)
        repo.invalidate()
        served = await repo.get(1)
        assert served.provenance.source == "directus"


async def test_a_thousand_cold_gets_make_one_directus_request(directus):
    transport = CountingTransport()
    source = DirectusSource(
        directus.url, directus.readonly_token, transport=transport, kind=PROMPT_SETS
    )
    results = []
    async with CachingRepository(source) as repo:

        async def call() -> None:
            results.append(await repo.get(2))

        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(call)
    assert transport.requests == 1
    assert len(results) == 1000
    assert len({r.config_hash for r in results}) == 1


@pytest.mark.parametrize("fault", ["stalled", "down"])
async def test_mongodb_trouble_does_not_slow_directus_backed_gets(directus, own_nx_server, fault):
    mirror = MongoMirror(
        own_nx_server.uri, socket_timeout=30, server_selection_timeout=30, kind=PROMPT_SETS
    )
    source = DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS)
    if fault == "stalled":
        own_nx_server.pause()
    else:
        own_nx_server.kill()
    try:
        async with CachingRepository(source, mirror) as repo:
            started = time.monotonic()
            served = await repo.get(3)
            elapsed = time.monotonic() - started
            assert served.provenance.source == "directus"
            assert elapsed < 1.5  # a Directus query here takes ~20 ms; MongoDB waits 30 s
    finally:
        if fault == "stalled":
            own_nx_server.resume()


async def test_a_withdrawn_version_never_comes_back_from_mongodb(mongo_database):
    """Review case 4 against the wire-protocol server: latest was 3; 3 is unpublished; then
    Directus stalls and the hedge asks MongoDB for latest."""
    from storybench_prompts import MongoMirror
    from tests.fakes import ScriptedOrigin

    origin = ScriptedOrigin({2: flat_set(2), 3: flat_set(3)})
    mirror = MongoMirror(database=mongo_database, kind=PROMPT_SETS)
    policy = CachePolicy(fallback_after=0.05, latest_ttl=0, max_stale=0)
    async with CachingRepository(origin, mirror, policy=policy, close_mirror=False) as repo:
        await repo.warm()  # both in MongoDB; 3 active, as storybench's reader sees it
        assert (await mirror.active()).version == 3
        assert (await repo.latest()).version == 3
        del origin.sets[3]  # unpublished in Directus
        assert (await repo.latest()).version == 2
        with anyio.fail_after(5):  # the withdrawal lands; storybench's reader moves to 2 too
            while (await mirror.latest()).version != 2 or (await mirror.active()).version != 2:
                await anyio.sleep(0.01)
        assert (await mirror.get_by_hash(flat_set(3).config_hash)).version == 3  # a record
        origin.gate = anyio.Event()  # Directus stalls: the hedge asks MongoDB
        repo.invalidate()
        hedged = await repo.latest()
        assert hedged.version == 2
        assert hedged.provenance.hedged is True
        origin.gate.set()
