"""The cache's rules against the ways a hostile review made it serve a wrong set, leak or wait
for nothing; and failing over at Directus's first refusal. Fake clock and sleep throughout, so
every timing rule is exact."""

import contextlib
import gc
import itertools
import tracemalloc

import anyio
import pytest

from storybench_prompts import (
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    DirectusConnectionError,
    InMemoryMirror,
    OriginState,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
    RetryPolicy,
)
from storybench_prompts._defaults import DEFAULT_REVALIDATION_DEBOUNCE, DEFAULT_REVALIDATION_SPACING
from storybench_prompts._exceptions import FetchInterruptedError
from storybench_prompts.cache.singleflight import SingleFlight
from storybench_prompts.sources.retry import call_with_retries
from tests.factories import flat_set
from tests.fakes import FakeClock, ScriptedOrigin

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

POLICY = CachePolicy(
    fallback_after=0.2,
    mirror_timeout=3.0,
    pinned_ttl=100,
    latest_ttl=10,
    max_stale=50,
    stale_if_error=1000,
    not_found_ttl=30,
    fallback_ttl=2,
    probe_initial=1.0,
    probe_max=8.0,
)


def repo(origin, mirror=None, clock=None, policy=POLICY):
    clock = clock or FakeClock()
    return CachingRepository(
        origin, mirror, policy=policy, clock=clock, sleep=clock.sleep, rand=lambda: 1.0
    )


class GatedMirror(InMemoryMirror):
    """An in-memory mirror whose reads wait for a gate (a slow or hung MongoDB)."""

    def __init__(self, sets):
        super().__init__(sets, kind=PROMPT_SETS)
        self.gate = anyio.Event()
        self.reads = 0

    async def get(self, version):
        self.reads += 1
        await self.gate.wait()
        return await super().get(version)

    async def latest(self):
        self.reads += 1
        await self.gate.wait()
        return await super().latest()


class RetryingOrigin(ScriptedOrigin):
    """Answers through the real retry loop: scripted failures per attempt, then the set."""

    def __init__(self, sets=None, failures=()):
        super().__init__(sets)
        self.failures = list(failures)
        self.attempts = 0
        self.retry_gate: anyio.Event | None = None

    async def _answer(self, key):
        async def attempt():
            self.attempts += 1
            if self.failures:
                raise self.failures.pop(0)
            if self.retry_gate is not None:
                await self.retry_gate.wait()
            return await ScriptedOrigin._answer(self, key)

        return await call_with_retries(
            attempt,
            RetryPolicy(max_attempts=4, initial_backoff=0, max_backoff=0),
            sleep=lambda _s: anyio.sleep(0),
        )


# -- 2: latest() never goes back in time ---------------------------------------------------


async def test_a_slow_mirror_copy_never_replaces_a_newer_latest():
    # A's fetch fails at its first attempt, so A reads the (slow) mirror, which holds v5;
    # meanwhile the same fetch's retry returns v6 and caches it. A must not get, or store, v5.
    origin = RetryingOrigin({5: flat_set(5), 6: flat_set(6)}, [DirectusConnectionError("reset")])
    origin.retry_gate = anyio.Event()
    mirror = GatedMirror([flat_set(5)])
    async with repo(origin, mirror) as r:
        served = []
        async with anyio.create_task_group() as tg:

            async def caller_a():
                served.append(await r.latest())

            tg.start_soon(caller_a)
            await anyio.wait_all_tasks_blocked()
            assert mirror.reads == 1  # A is reading the mirror
            origin.retry_gate.set()  # the retry lands: v6 is cached
            await anyio.wait_all_tasks_blocked()
            mirror.gate.set()  # only now does the mirror answer, with v5
        assert served[0].version == 6
        caller_c = await r.latest()
        assert caller_c.version == 6
        assert caller_c.provenance.stale is False


async def test_latest_never_serves_a_lower_version_than_it_served():
    origin = ScriptedOrigin({5: flat_set(5), 6: flat_set(6)})
    clock = FakeClock()
    mirror = InMemoryMirror(
        [flat_set(5)], kind=PROMPT_SETS
    )  # behind: the write-through of v6 has not happened
    async with repo(origin, mirror, clock) as r:
        assert (await r.latest()).version == 6
        await anyio.wait_all_tasks_blocked()
        mirror._current.pop(6, None)  # the mirror lost v6 (an older MongoDB restored, say)
        clock.advance(POLICY.latest_ttl + POLICY.max_stale + 1)
        origin.error = DirectusConnectionError("refused")
        again = await r.latest()
        assert again.version == 6
        assert again.provenance.stale is True


# -- 3 and 4: what Directus withdrew is never served again ---------------------------------


async def test_a_cached_version_directus_unpublished_is_dropped_not_served_forever():
    origin = ScriptedOrigin()
    clock = FakeClock()
    async with repo(origin, InMemoryMirror(kind=PROMPT_SETS), clock) as r:
        await r.get(2)
        clock.advance(POLICY.pinned_ttl + 1)  # expired, within max_stale
        del origin.sets[2]  # unpublished in Directus
        assert (await r.get(2)).provenance.stale is True  # served once while revalidating
        await anyio.wait_all_tasks_blocked()
        for _ in range(20):
            with pytest.raises(PromptSetNotFoundError):
                await r.get(2)
        assert origin.calls == [2, 2]  # the load and the one refresh, nothing more
        clock.advance(POLICY.not_found_ttl + 1)
        with pytest.raises(PromptSetNotFoundError):
            await r.get(2)
        assert origin.calls == [2, 2, 2]  # asked again only after not_found_ttl


async def test_the_mirror_never_brings_back_a_version_directus_withdrew():
    origin = ScriptedOrigin({2: flat_set(2), 3: flat_set(3)})
    clock = FakeClock()
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    async with repo(origin, mirror, clock) as r:
        assert (await r.latest()).version == 3
        await anyio.wait_all_tasks_blocked()
        assert await mirror.stored_hash(3) == flat_set(3).config_hash
        del origin.sets[3]  # v3 unpublished: latest is 2 again
        clock.advance(POLICY.latest_ttl + POLICY.max_stale + 1)
        assert (await r.latest()).version == 2
        await anyio.wait_all_tasks_blocked()
        assert 3 in mirror._withdrawn  # kept as a record, never served
        # Directus now stalls: the hedge asks the mirror for latest, which must not be v3.
        r.invalidate()
        origin.gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            got = []

            async def call():
                got.append(await r.latest())

            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            clock.advance(POLICY.fallback_after)
        assert got[0].version == 2
        assert got[0].provenance.hedged is True
        origin.gate.set()
        with pytest.raises(PromptSetNotFoundError):
            await r.get(3)


# -- 5 and 12: the hedge takes whichever answers first, timed by the injected clock --------


async def test_the_hedge_returns_when_directus_answers_even_if_the_mirror_hangs():
    origin = ScriptedOrigin()
    origin.gate = anyio.Event()
    clock = FakeClock()
    mirror = GatedMirror([flat_set(1)])  # hangs until its gate opens
    async with repo(origin, mirror, clock) as r:
        got = []
        async with anyio.create_task_group() as tg:

            async def call():
                got.append(await r.get(1))

            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            assert mirror.reads == 0  # nothing asked of the mirror before fallback_after
            clock.advance(POLICY.fallback_after)
            await anyio.wait_all_tasks_blocked()
            assert mirror.reads == 1  # now both race
            clock.advance(0.1)  # Directus answers at 0.3 s
            origin.gate.set()
        assert got[0].provenance.source == "directus"
        assert clock.now - 1000.0 == pytest.approx(0.3)  # not fallback_after + mirror_timeout
        mirror.gate.set()


async def test_a_hung_mirror_is_abandoned_after_mirror_timeout_on_the_same_clock():
    origin = ScriptedOrigin()
    origin.error = DirectusConnectionError("refused")
    clock = FakeClock()
    mirror = GatedMirror([flat_set(1)])
    async with repo(origin, mirror, clock) as r:
        errors = []
        async with anyio.create_task_group() as tg:

            async def call():
                try:
                    await r.get(1)
                except Exception as exc:
                    errors.append(exc)

            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            clock.advance(POLICY.mirror_timeout)
        assert "did not answer" in str(errors[0])
        mirror.gate.set()


# -- 7: the not-found cache hands out fresh exceptions -------------------------------------


async def test_not_found_memory_stays_flat_over_a_hundred_thousand_calls():
    async with repo(ScriptedOrigin()) as r:

        async def miss(n: int) -> None:
            for _ in range(n):
                with contextlib.suppress(PromptSetNotFoundError):
                    await r.get(99)

        await miss(1000)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await miss(100_000)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert after - before < 256 * 1024, after - before
        assert r.stats().not_found_hits == 100_999


async def test_each_caller_gets_its_own_not_found_error():
    async with repo(ScriptedOrigin()) as r:
        caught = []
        for _ in range(3):
            try:
                await r.get(99)
            except PromptSetNotFoundError as exc:
                caught.append(exc)
        assert len({id(e) for e in caught}) == 3
        assert caught[1].version == 99
        assert len(list(_frames(caught[2]))) <= 3


def _frames(exc):
    tb = exc.__traceback__
    while tb is not None:
        yield tb
        tb = tb.tb_next


# -- 10: a flight that dies of a BaseException ---------------------------------------------


class _DeferredTaskGroup:
    """Holds what join() starts, so the test can run it in its own frame: asyncio lets a
    SystemExit or KeyboardInterrupt raised in a task escape the event loop itself."""

    def __init__(self):
        self.started = []

    def start_soon(self, fn, *args, name=None):
        self.started.append(fn)


@pytest.mark.parametrize("fatal", [SystemExit(3), KeyboardInterrupt()])
async def test_waiters_get_a_clear_error_when_the_shared_call_dies(fatal):
    flights = SingleFlight()

    async def call(_flight):
        await anyio.sleep(0)
        raise fatal

    group = _DeferredTaskGroup()
    flight = flights.join("k", call, group)
    with pytest.raises(type(fatal)):
        await group.started[0]()
    assert flight.done.is_set()
    with pytest.raises(FetchInterruptedError, match=type(fatal).__name__):
        flight.result()
    assert not flights.in_flight("k")


async def test_waiters_get_a_clear_error_when_the_shared_call_is_cancelled():
    flights = SingleFlight()
    started = anyio.Event()

    async def call(_flight):
        started.set()
        await anyio.sleep_forever()

    errors = []
    async with anyio.create_task_group() as outer, anyio.create_task_group() as owner:
        flight = flights.join("k", call, owner)

        async def waiter():
            try:
                await flight.wait()
            except FetchInterruptedError as exc:
                errors.append(exc)

        outer.start_soon(waiter)
        await started.wait()
        owner.cancel_scope.cancel()
    assert len(errors) == 1
    assert not flights.in_flight("k")


# -- 13: fail over at the first refusal; one probe at a time while Directus is down --------


async def test_the_first_refusal_serves_the_mirror_while_the_same_flight_retries():
    origin = RetryingOrigin({1: flat_set(1, text_suffix=" new")}, [DirectusConnectionError("x")])
    origin.retry_gate = anyio.Event()
    async with repo(origin, InMemoryMirror([flat_set(1)], kind=PROMPT_SETS)) as r:
        with anyio.fail_after(1):
            served = await r.get(1)
        assert served.provenance.source == "mirror"
        assert served.provenance.origin_error == "DirectusConnectionError"
        assert r.status().state is OriginState.INTERRUPTED
        assert r.stats().failovers == 1
        origin.retry_gate.set()  # the retry of the same flight succeeds
        await anyio.wait_all_tasks_blocked()
        assert origin.calls == [1]  # one flight
        assert origin.attempts == 2
        assert r.status().state is OriginState.VALID
        fresh = await r.get(1)
        assert fresh.config_hash == flat_set(1, text_suffix=" new").config_hash


async def test_a_set_nobody_has_still_waits_for_the_retries():
    origin = RetryingOrigin({1: flat_set(1)}, [DirectusConnectionError("x")] * 2)
    async with repo(origin, InMemoryMirror(kind=PROMPT_SETS)) as r:
        served = await r.get(1)
        assert served.provenance.source == "directus"
        assert origin.attempts == 3


async def test_many_callers_over_many_keys_make_one_attempt_per_probe_interval():
    origin = ScriptedOrigin({v: flat_set(v) for v in range(10)})
    clock = FakeClock()
    mirror = InMemoryMirror([flat_set(v) for v in range(10)], kind=PROMPT_SETS)
    async with repo(origin, mirror, clock) as r:
        origin.error = DirectusConnectionError("refused")
        await r.get(0)  # the outage starts
        assert r.status().state is OriginState.INTERRUPTED
        attempts_per_interval = []
        for _interval in range(6):
            before = len(origin.calls)
            async with anyio.create_task_group() as tg:
                for caller in range(100):
                    tg.start_soon(r.get, caller % 10)
            await anyio.wait_all_tasks_blocked()
            attempts_per_interval.append(len(origin.calls) - before)
            clock.advance(POLICY.probe_max)  # at least one probe interval
        assert max(attempts_per_interval) <= 1
        assert sum(attempts_per_interval) >= 5  # and it does keep probing
        origin.error = None  # Directus is back
        await r.get(3)
        await anyio.wait_all_tasks_blocked()
        assert r.status().state is OriginState.VALID  # noticed by the next probe


async def test_probes_back_off_while_directus_stays_down():
    origin = ScriptedOrigin()
    clock = FakeClock()
    async with repo(origin, InMemoryMirror([flat_set(1)], kind=PROMPT_SETS), clock) as r:
        origin.error = DirectusConnectionError("refused")
        await r.get(1)
        probe_times = []
        for _ in range(80):  # 20 s in quarter seconds, one call each
            before = len(origin.calls)
            await r.get(1)
            await anyio.wait_all_tasks_blocked()
            if len(origin.calls) > before:
                probe_times.append(clock.now)
            clock.advance(0.25)
        gaps = [b - a for a, b in itertools.pairwise(probe_times)]
        assert gaps == sorted(gaps)  # spacing grows
        assert gaps[-1] <= POLICY.probe_max + 0.25


class SlowSavingMirror(InMemoryMirror):
    def __init__(self, sets=None):
        super().__init__(sets, kind=PROMPT_SETS)
        self.gate = anyio.Event()

    async def save(self, content):
        await self.gate.wait()
        return await super().save(content)


async def test_leaving_the_block_lets_a_write_through_land():
    clock = FakeClock()
    mirror = SlowSavingMirror()
    async with anyio.create_task_group() as tg:

        async def use():
            async with repo(ScriptedOrigin(), mirror, clock) as r:
                await r.get(1)  # fresh from Directus: written to the mirror behind the caller

        tg.start_soon(use)
        await anyio.wait_all_tasks_blocked()
        assert await mirror.stored_hash(1) is None  # still writing; the block is closing
        mirror.gate.set()
    assert await mirror.stored_hash(1) == flat_set(1).config_hash


async def test_a_hung_mirror_write_delays_closing_by_mirror_timeout_at_most():
    clock = FakeClock()
    mirror = SlowSavingMirror()  # its gate never opens
    closed = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def use():
            async with repo(ScriptedOrigin(), mirror, clock) as r:
                await r.get(1)
            closed.set()

        tg.start_soon(use)
        await anyio.wait_all_tasks_blocked()
        assert not closed.is_set()
        clock.advance(POLICY.mirror_timeout)
        await anyio.wait_all_tasks_blocked()
        assert closed.is_set()
    assert await mirror.stored_hash(1) is None


# -- found by review: each reproduced against the code before its fix ----------------------


async def test_after_a_change_event_the_old_content_is_never_served_as_fresh():
    from storybench_prompts import DirectusRateLimitedError

    origin = ScriptedOrigin({1: flat_set(1)})
    clock = FakeClock()
    async with repo(origin, InMemoryMirror(kind=PROMPT_SETS), clock) as r:
        await r.get(1)
        origin.sets[1] = flat_set(1, text_suffix=" edited")
        origin.error = DirectusRateLimitedError("429")  # the refetch fails
        r.content_changed("prompts")
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)  # the revalidation round runs
        served = await r.get(1)
        assert served.provenance.stale is True  # the old content, but never as fresh
        assert served.provenance.origin_error == "DirectusRateLimitedError"
        origin.error = None
        clock.advance(POLICY.probe_max)
        await r.get(1)  # still served the copy; the due probe finds Directus back
        await anyio.wait_all_tasks_blocked()
        assert r.status().state is OriginState.VALID
        assert (await r.get(1)).config_hash == flat_set(1, text_suffix=" edited").config_hash
        origin.sets[1] = flat_set(1, text_suffix=" edited again")
        origin.gate = anyio.Event()  # the next refetch is slow
        r.content_changed("prompts")
        await clock.run_for(DEFAULT_REVALIDATION_SPACING)
        # A revalidation never blocks a reader: the old content at once, marked stale.
        during = await r.get(1)
        assert during.provenance.stale is True
        assert during.config_hash == flat_set(1, text_suffix=" edited").config_hash
        origin.gate.set()
        await anyio.wait_all_tasks_blocked()
        after = await r.get(1)
        assert after.config_hash == flat_set(1, text_suffix=" edited again").config_hash
        assert after.provenance.stale is False


async def test_many_keys_nobody_has_cannot_storm_a_directus_known_to_be_down():
    origin = ScriptedOrigin({v: flat_set(v) for v in range(30)})
    clock = FakeClock()
    async with repo(origin, InMemoryMirror([flat_set(0)], kind=PROMPT_SETS), clock) as r:
        origin.error = DirectusConnectionError("refused")
        await r.get(0)  # the outage starts
        before = len(origin.calls)
        outcomes = []
        async with anyio.create_task_group() as tg:
            for v in range(1, 30):

                async def call(v=v):
                    try:
                        await r.get(v)
                    except Exception as exc:
                        outcomes.append(type(exc).__name__)

                tg.start_soon(call)
        assert len(origin.calls) - before <= 1  # one probe at most, not one per key
        assert set(outcomes) == {"PromptSetUnavailableError"}
        with pytest.raises(PromptSetUnavailableError, match="asked again in"):
            await r.get(99)


async def test_a_withdrawn_version_is_not_served_from_the_mirror_even_if_marking_it_failed():
    class UnwritableMirror(InMemoryMirror):
        async def withdraw(self, version):
            raise OSError("mirror write failed")

    origin = ScriptedOrigin({1: flat_set(1), 2: flat_set(2), 3: flat_set(3)})
    clock = FakeClock()
    mirror = UnwritableMirror([flat_set(1), flat_set(2), flat_set(3)], kind=PROMPT_SETS)
    async with repo(origin, mirror, clock) as r:
        assert (await r.latest()).version == 3
        del origin.sets[3]
        clock.advance(8000)
        with pytest.raises(PromptSetNotFoundError):
            await r.get(3)
        origin.error = DirectusConnectionError("refused")
        clock.advance(POLICY.not_found_ttl + 1)
        # The mirror still calls v3 its latest: refused, and nothing lower is at hand.
        with pytest.raises(PromptSetUnavailableError, match="withdrawn"):
            await r.latest()
        with pytest.raises(PromptSetUnavailableError):
            await r.get(3)


async def test_latest_does_not_go_back_when_the_cache_lost_the_higher_set():
    class FlakyMirror(InMemoryMirror):
        async def save(self, content):
            raise OSError("disk full")

    origin = ScriptedOrigin({1: flat_set(1), 2: flat_set(2), 3: flat_set(3)})
    clock = FakeClock()
    policy = CachePolicy(
        latest_ttl=60, pinned_ttl=60, max_stale=0, stale_if_error=600, fallback_after=0.2
    )
    async with repo(
        origin, FlakyMirror([flat_set(1), flat_set(2)], kind=PROMPT_SETS), clock, policy
    ) as r:
        assert (await r.latest()).version == 3
        clock.advance(700)  # every cache entry is gone
        origin.error = DirectusConnectionError("refused")
        again = await r.latest()
        assert again.version == 3
        assert again.provenance.stale is True


async def test_a_served_set_cannot_be_changed_by_one_caller_for_everyone():
    async with repo(ScriptedOrigin()) as r:
        first = await r.get(1)
        with pytest.raises((TypeError, AttributeError)):
            first.sequences.clear()
        with pytest.raises(TypeError):
            first.sequences["Injected"] = ()
        assert (await r.get(1)).config_hash == flat_set(1).config_hash


async def test_versions_during_an_outage_are_bounded_by_mirror_timeout():
    class HungListing(InMemoryMirror):
        async def versions(self):
            await anyio.sleep_forever()

    origin = ScriptedOrigin()
    clock = FakeClock()
    async with repo(origin, HungListing([flat_set(1)], kind=PROMPT_SETS), clock) as r:
        origin.error = DirectusConnectionError("refused")
        await r.get(1)
        errors = []
        async with anyio.create_task_group() as tg:

            async def listing():
                try:
                    await r.versions()
                except Exception as exc:
                    errors.append(exc)

            tg.start_soon(listing)
            await anyio.wait_all_tasks_blocked()
            clock.advance(POLICY.mirror_timeout)
        assert "did not answer" in str(errors[0])


async def test_a_repository_is_entered_once():
    r = repo(ScriptedOrigin())
    async with r:
        pass
    with pytest.raises(RuntimeError, match="entered once"):
        async with r:
            pass


# -- drift and reproducibility -------------------------------------------------------------


async def test_drift_is_noticed_once_and_a_run_gets_what_it_recorded():
    from storybench_prompts import ContentChangedError

    origin = ScriptedOrigin()
    clock = FakeClock()
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    async with repo(origin, mirror, clock) as r:
        recorded = (await r.get(2)).config_hash
        assert (await r.get(2, expect_hash=recorded)).config_hash == recorded
        await anyio.wait_all_tasks_blocked()
        origin.sets[2] = flat_set(2, text_suffix=" edited in place")
        clock.advance(POLICY.pinned_ttl + POLICY.max_stale + 1)
        edited = await r.get(2)
        await anyio.wait_all_tasks_blocked()
        clock.advance(POLICY.pinned_ttl + POLICY.max_stale + 1)
        await r.get(2)  # the same new content again: no second drift
        assert [(d.version, d.old_hash, d.new_hash) for d in r.drifts()] == [
            (2, recorded, edited.config_hash)
        ]
        assert r.stats().drifts == 1
        with pytest.raises(ContentChangedError) as info:
            await r.get(2, expect_hash=recorded)
        assert (info.value.expected, info.value.actual) == (recorded, edited.config_hash)
        old = await r.get_by_hash(recorded)  # from the mirror: the cache holds the new one
        assert old.config_hash == recorded
        assert old.provenance.source == "mirror"
        assert (await r.get_by_hash(edited.config_hash)).provenance.source == "cache"
        with pytest.raises(PromptSetNotFoundError):
            await r.get_by_hash("0000000000000000")
