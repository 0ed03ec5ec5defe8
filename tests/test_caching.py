"""The caching repository's rules, each with a scripted origin and a hand-driven clock."""

import logging
from typing import Any

import anyio
import pytest

from storybench_prompts import (
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    DirectusAuthenticationError,
    DirectusConnectionError,
    DirectusServerError,
    InMemoryMirror,
    InvalidPromptSetError,
    MirrorUnavailableError,
    OriginState,
    Problem,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
)
from tests.factories import flat_set
from tests.fakes import FakeClock, ScriptedOrigin

pytestmark = pytest.mark.anyio

FAST = CachePolicy(
    fallback_after=0.05,
    mirror_timeout=1.0,
    pinned_ttl=100,
    latest_ttl=10,
    max_stale=50,
    stale_if_error=1000,
    not_found_ttl=5,
    fallback_ttl=2,
)


def repo(origin=None, mirror=None, policy=FAST, clock=None):
    return CachingRepository(
        origin or ScriptedOrigin(), mirror, policy=policy, clock=clock or FakeClock()
    )


async def test_fresh_hit_makes_no_origin_call():
    origin = ScriptedOrigin()
    async with repo(origin) as r:
        first = await r.get(1)
        second = await r.get(1)
        assert first.provenance.source == "directus"
        assert second.provenance.source == "cache"
        assert second.provenance.stale is False
        assert second.config_hash == first.config_hash
        assert origin.calls == [1]
        assert r.stats().hits == 1
        assert r.stats().misses == 1
    assert origin.closed


async def test_concurrent_misses_share_one_origin_call():
    origin = ScriptedOrigin()
    origin.gate = anyio.Event()
    fetched = []
    async with repo(origin) as r, anyio.create_task_group() as tg:

        async def call():
            fetched.append(await r.get(2))

        for _ in range(200):
            tg.start_soon(call)
        await anyio.sleep(0.01)
        origin.gate.set()
    assert origin.calls == [2]
    assert len(fetched) == 200
    assert {p.config_hash for p in fetched} == {flat_set(2).config_hash}


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch():
    origin = ScriptedOrigin()
    origin.gate = anyio.Event()
    got = []
    async with repo(origin) as r:
        async with anyio.create_task_group() as tg:

            async def impatient():
                with anyio.move_on_after(0.01):
                    await r.get(1)

            async def patient():
                got.append(await r.get(1))

            tg.start_soon(impatient)
            tg.start_soon(patient)
            await anyio.sleep(0.05)
            origin.gate.set()
        assert (await r.get(1)).provenance.source == "cache"
    assert len(got) == 1
    assert origin.calls == [1]


async def test_slow_origin_is_hedged_with_the_mirror_copy_then_refreshed():
    origin = ScriptedOrigin({1: flat_set(1, text_suffix=" new")})
    origin.gate = anyio.Event()
    mirror = InMemoryMirror([flat_set(1)], kind=PROMPT_SETS)
    async with repo(origin, mirror) as r:
        with anyio.fail_after(1):
            served = await r.get(1)
        assert served.provenance.source == "mirror"
        assert served.provenance.hedged is True
        assert served.config_hash == flat_set(1).config_hash
        assert r.stats().hedged_serves == 1
        origin.gate.set()
        await anyio.sleep(0.05)  # the background fetch lands, then write-through
        fresh = await r.get(1)
        assert fresh.provenance.source == "cache"
        assert fresh.config_hash == flat_set(1, text_suffix=" new").config_hash
    assert await mirror.stored_hash(1) == flat_set(1, text_suffix=" new").config_hash
    assert origin.calls == [1]


async def test_slow_origin_without_mirror_copy_is_awaited():
    origin = ScriptedOrigin()
    origin.gate = anyio.Event()
    async with repo(origin, InMemoryMirror(kind=PROMPT_SETS)) as r, anyio.create_task_group() as tg:

        async def release():
            await anyio.sleep(0.2)
            origin.gate.set()

        tg.start_soon(release)
        served = await r.get(3)
        assert served.provenance.source == "directus"


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (DirectusConnectionError("refused"), OriginState.INTERRUPTED),
        (DirectusServerError("bad gateway", status=502), OriginState.INTERRUPTED),
        # Invalid content is a fact about one version: served around, Directus not "down".
        (InvalidPromptSetError([Problem("x", "empty")]), OriginState.INITIALIZING),
    ],
    ids=["down", "5xx", "invalid"],
)
async def test_origin_errors_fall_back_to_the_mirror(error, state):
    origin = ScriptedOrigin()
    origin.error = error
    async with repo(origin, InMemoryMirror([flat_set(2)], kind=PROMPT_SETS)) as r:
        served = await r.get(2)
        assert served.provenance.source == "mirror"
        assert r.stats().mirror_fallbacks == 1
        assert r.stats().origin_errors[type(error).__name__] == 1
        assert r.status().state is state
        assert r.status().last_error_kind == type(error).__name__
        # The copy is reused for fallback_ttl, so an outage costs no origin call per get.
        assert (await r.get(2)).provenance.origin == "directus"
        assert len(origin.calls) == 1


async def test_stale_cache_is_served_when_the_origin_fails():
    clock = FakeClock()
    origin = ScriptedOrigin()
    async with repo(origin, InMemoryMirror(kind=PROMPT_SETS), clock=clock) as r:
        await r.get(1)
        clock.advance(FAST.pinned_ttl + FAST.max_stale + 1)  # past swr: must ask the origin
        origin.error = DirectusConnectionError("refused")
        served = await r.get(1)
        assert served.provenance.source == "cache"
        assert served.provenance.stale is True
        assert served.config_hash == flat_set(1).config_hash


async def test_no_copy_anywhere_raises_one_error_with_every_cause():
    origin = ScriptedOrigin()
    origin.error = DirectusConnectionError("refused")
    async with repo(origin, InMemoryMirror(kind=PROMPT_SETS)) as r:
        with pytest.raises(PromptSetUnavailableError) as info:
            await r.get(7)
    kinds = [type(c) for c in info.value.causes]
    assert kinds == [DirectusConnectionError, PromptSetNotFoundError]
    assert "version 7" in str(info.value)
    assert "refused" in str(info.value)


async def test_expired_entry_is_served_at_once_and_refreshed_in_background():
    clock = FakeClock()
    origin = ScriptedOrigin()
    async with repo(origin, clock=clock) as r:
        await r.get(1)
        origin.sets[1] = flat_set(1, text_suffix=" v2")
        clock.advance(FAST.pinned_ttl + 1)
        stale = await r.get(1)
        assert stale.provenance.stale is True
        assert stale.config_hash == flat_set(1).config_hash
        await anyio.sleep(0.01)
        fresh = await r.get(1)
        assert fresh.provenance.stale is False
        assert fresh.config_hash == flat_set(1, text_suffix=" v2").config_hash
        assert origin.calls == [1, 1]
        assert r.stats().stale_serves == 1
        assert r.stats().background_refreshes == 1


async def test_past_max_stale_the_caller_waits_for_a_fresh_fetch():
    clock = FakeClock()
    origin = ScriptedOrigin()
    async with repo(origin, clock=clock) as r:
        await r.get(1)
        origin.sets[1] = flat_set(1, text_suffix=" v2")
        clock.advance(FAST.pinned_ttl + FAST.max_stale + 1)
        served = await r.get(1)
        assert served.provenance.source == "directus"
        assert served.config_hash == flat_set(1, text_suffix=" v2").config_hash


async def test_latest_has_a_shorter_ttl_than_pinned_versions():
    clock = FakeClock()
    origin = ScriptedOrigin()
    async with repo(origin, clock=clock) as r:
        assert (await r.latest()).version == 3
        clock.advance(FAST.latest_ttl + 1)
        assert (await r.get(3)).provenance.stale is False  # pinned entry still fresh
        assert (await r.latest()).provenance.stale is True  # latest expired
        await anyio.sleep(0.01)
        assert origin.calls == ["latest", "latest"]


async def test_write_through_only_when_the_hash_changes():
    clock = FakeClock()
    origin = ScriptedOrigin()
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    async with repo(origin, mirror, clock=clock) as r:
        await r.get(1)
        await anyio.sleep(0.01)
        assert mirror.saves == 1
        r.invalidate(1)
        await r.get(1)
        await anyio.sleep(0.01)
        assert mirror.saves == 1
        origin.sets[1] = flat_set(1, text_suffix=" changed")
        r.invalidate()
        await r.get(1)
        await anyio.sleep(0.01)
        assert mirror.saves == 2
        assert r.stats().mirror_writes == 2


class SlowBrokenMirror(InMemoryMirror):
    def __init__(self, fail: bool) -> None:
        super().__init__(kind=PROMPT_SETS)
        self.fail = fail
        self.gate = anyio.Event()

    async def save(self, prompt_set):
        await self.gate.wait()
        if self.fail:
            raise MirrorUnavailableError("disk on fire")
        return await super().save(prompt_set)


@pytest.mark.parametrize("fail", [False, True], ids=["slow", "broken"])
async def test_a_slow_or_broken_mirror_never_delays_or_fails_the_caller(fail):
    mirror = SlowBrokenMirror(fail)
    async with repo(ScriptedOrigin(), mirror) as r:
        with anyio.fail_after(0.5):
            served = await r.get(1)
        assert served.version == 1
        mirror.gate.set()
        await anyio.sleep(0.01)
        assert r.stats().mirror_write_errors == (1 if fail else 0)


async def test_not_found_is_remembered_briefly():
    clock = FakeClock()
    origin = ScriptedOrigin()
    async with repo(origin, InMemoryMirror([flat_set(9)], kind=PROMPT_SETS), clock=clock) as r:
        for _ in range(3):
            with pytest.raises(PromptSetNotFoundError):
                await r.get(9)  # the origin's answer wins over the mirror's copy
        assert origin.calls == [9]
        assert r.stats().not_found_hits == 2
        clock.advance(FAST.not_found_ttl + 1)
        with pytest.raises(PromptSetNotFoundError):
            await r.get(9)
        assert origin.calls == [9, 9]


async def test_outage_logged_once_at_start_and_once_at_end(caplog):
    origin = ScriptedOrigin()
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="storybench_prompts")
    async with repo(origin, InMemoryMirror([flat_set(1)], kind=PROMPT_SETS), clock=clock) as r:
        assert r.status().state is OriginState.INITIALIZING
        await r.get(1)
        assert r.status().state is OriginState.VALID
        origin.error = DirectusConnectionError("refused")
        for _ in range(5):
            r.invalidate()
            await r.get(1)
        status = r.status()
        assert status.state is OriginState.INTERRUPTED
        assert status.last_error_kind == "DirectusConnectionError"
        origin.error = None
        r.invalidate()
        # While Directus is known to be failing, only a due probe asks it again.
        assert (await r.get(1)).provenance.origin_error == "DirectusConnectionError"
        assert r.status().state is OriginState.INTERRUPTED
        clock.advance(FAST.probe_max)
        r.invalidate()
        assert (await r.get(1)).provenance.source == "mirror"  # served at once; probe behind
        await anyio.sleep(0.01)
        assert r.status().state is OriginState.VALID
    warnings = [x for x in caplog.records if x.levelno == logging.WARNING]
    infos = [x for x in caplog.records if "answering again" in x.getMessage()]
    assert len(warnings) == 1
    assert len(infos) == 1


async def test_a_token_rejected_from_the_start_is_raised_never_served_around(caplog):
    origin = ScriptedOrigin()
    origin.error = DirectusAuthenticationError(
        "rejected token", status=401, setting="DIRECTUS_TOKEN"
    )
    async with repo(origin, InMemoryMirror([flat_set(1)], kind=PROMPT_SETS)) as r:
        for _ in range(3):  # a misconfiguration, not an outage: it will not fix itself
            with pytest.raises(DirectusAuthenticationError):
                await r.get(1)
        assert r.status().auth_failed
        assert r.status().misconfigured == "DIRECTUS_TOKEN"
        assert r.stats().mirror_fallbacks == 0
    assert any(x.levelno == logging.ERROR and "token" in x.getMessage() for x in caplog.records)


async def test_a_token_that_expires_after_working_is_served_around_loudly(caplog):
    clock = FakeClock()
    origin = ScriptedOrigin()
    async with repo(origin, InMemoryMirror([flat_set(1)], kind=PROMPT_SETS), clock=clock) as r:
        await r.get(2)  # Directus has accepted the token in this process
        origin.error = DirectusAuthenticationError("token expired", status=401)
        assert (await r.get(1)).provenance.source == "mirror"
        assert r.status().auth_failed
        assert r.status().misconfigured is None
    assert any(x.levelno == logging.ERROR and "token" in x.getMessage() for x in caplog.records)


async def test_warm_fills_cache_and_mirror_with_bounded_concurrency():
    origin = ScriptedOrigin({v: flat_set(v) for v in range(1, 11)})
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    policy = CachePolicy(warm_concurrency=3, fallback_after=0.05)
    async with repo(origin, mirror, policy=policy) as r:
        results = await r.warm()
        assert [x.outcome for x in results] == ["new"] * 10
        assert origin.max_active <= 3
        calls = len(origin.calls)
        for v in range(1, 11):
            assert (await r.get(v)).provenance.source == "cache"
        assert len(origin.calls) == calls
        assert [x.outcome for x in await r.warm([2, 3])] == ["unchanged", "unchanged"]
    assert [i.version for i in await mirror.versions()] == list(range(1, 11))


async def test_versions_fall_back_to_the_mirror():
    origin = ScriptedOrigin()
    origin.error = DirectusConnectionError("refused")
    async with repo(origin, InMemoryMirror([flat_set(4)], kind=PROMPT_SETS)) as r:
        assert [i.version for i in await r.versions()] == [4]


async def test_closing_cancels_background_work_cleanly():
    origin = ScriptedOrigin()
    origin.gate = anyio.Event()  # never released
    mirror = InMemoryMirror([flat_set(1)], kind=PROMPT_SETS)
    r = repo(origin, mirror)
    async with r:
        assert (await r.get(1)).provenance.hedged is True
        assert origin.active == 1
    assert origin.active == 0
    assert origin.closed


async def test_use_without_async_with_is_a_clear_error():
    r = repo()
    with pytest.raises(RuntimeError, match="async with"):
        await r.get(1)
    await r.aclose()


async def test_warm_without_a_mirror_fills_the_cache():
    origin = ScriptedOrigin()
    async with repo(origin) as r:
        results = await r.warm([1, 2])
        assert [x.outcome for x in results] == ["new", "new"]
        assert (await r.get(2)).provenance.source == "cache"
        assert origin.calls == [1, 2]


class CountingMirror(InMemoryMirror):
    def __init__(self, sets) -> None:
        super().__init__(sets, kind=PROMPT_SETS)
        self.reads = 0

    async def get(self, version):
        self.reads += 1
        await anyio.sleep(0.01)
        return await super().get(version)


async def test_an_outage_stampede_makes_one_mirror_read():
    origin = ScriptedOrigin()
    origin.error = DirectusConnectionError("refused")
    mirror = CountingMirror([flat_set(1)])
    served = []
    async with repo(origin, mirror) as r, anyio.create_task_group() as tg:

        async def call():
            served.append(await r.get(1))

        for _ in range(300):
            tg.start_soon(call)
    assert len(served) == 300
    assert {p.provenance.source for p in served} == {"mirror"}
    assert len(origin.calls) == 1
    assert mirror.reads == 1


async def test_a_caller_joining_a_fetch_another_caller_gave_up_on_is_hedged_at_once():
    """A frozen Directus: the first caller waits fallback_after for the mirror; the next ones,
    joining the same fetch, are answered by the mirror without waiting again."""
    clock = FakeClock()
    origin = ScriptedOrigin({1: flat_set(1, text_suffix=" new")})
    origin.gate = anyio.Event()  # Directus never answers
    mirror = InMemoryMirror([flat_set(1)], kind=PROMPT_SETS)
    policy = CachePolicy(fallback_after=2.0)
    async with CachingRepository(
        origin, mirror, policy=policy, clock=clock, sleep=clock.sleep
    ) as r:
        async with anyio.create_task_group() as tg:
            first: list[Any] = []

            async def ask() -> None:
                first.append(await r.latest())

            tg.start_soon(ask)
            await clock.run_for(2.0)
        assert first[0].provenance.hedged is True
        waited_from = clock()
        for _ in range(3):
            served = await r.latest()  # no clock advance: answered at once
            assert served.provenance.hedged is True
            assert served.config_hash == flat_set(1).config_hash
        assert clock() == waited_from
        assert origin.calls == ["latest"]  # still the one fetch
        origin.gate.set()
