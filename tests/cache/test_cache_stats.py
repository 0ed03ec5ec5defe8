"""Stats is an observer of events: each event moves exactly the counters it should."""

import pytest

from storybench_prompts import Stats
from storybench_prompts._events import (
    ContentChanged,
    LookupFailed,
    MirrorWritten,
    OriginFetched,
    Served,
)


def served(source, how, rule):
    return Served("prompts", 1, 1, source, how, rule, 0.01)


def test_lookups_move_their_counters():
    stats = Stats()
    for event in [
        served("cache", "fresh", "hit"),
        served("directus", "fresh", "origin"),
        served("cache", "stale", "stale"),
        served("mirror", "hedged", "hedge"),
        served("mirror", "failover", "first_failure"),
        served("cache", "failover", "outage"),
        served("mirror", "failover", "after_error"),
        served("cache", "failover", "after_error"),
        LookupFailed("prompts", 9, "not_found", "PromptSetNotFoundError", "cache", 0.0),
        LookupFailed("prompts", 9, "not_found", "DirectusNotFoundError", "directus", 0.0),
        LookupFailed("prompts", 9, "error", "PromptSetUnavailableError", "cache", 0.0),
    ]:
        stats(event)
    assert stats.hits == 1
    # origin, hedge, first failure, both after errors, and Directus's own not found
    assert stats.misses == 6
    assert stats.stale_serves == 2
    assert stats.hedged_serves == 1
    assert stats.failovers == 2
    assert stats.mirror_fallbacks == 1
    assert stats.not_found_hits == 1


def test_fetches_move_requests_errors_and_latency():
    stats = Stats()
    stats(OriginFetched("prompts", 1, "caller", False, "ok", 1, None, 0.0, 0.2))
    stats(OriginFetched("prompts", 1, "refresh", True, "error", 1, "DirectusServerError", 0.0, 0.1))
    stats(OriginFetched("prompts", 2, "refresh", False, "not_found", 1, None, 0.0, 0.1))
    assert stats.origin_requests == 3
    assert stats.background_refreshes == 2
    assert stats.probes == 1
    assert stats.origin_errors == {"DirectusServerError": 1}
    assert stats.origin_latency_max == 0.2
    assert stats.origin_latency_last == 0.2


def test_mirror_writes_withdrawals_and_drift():
    stats = Stats()
    stats(MirrorWritten("prompts", 1, "save", "new"))
    stats(MirrorWritten("prompts", 1, "save", "unchanged"))
    stats(MirrorWritten("prompts", 1, "save", "error", "MirrorUnavailableError"))
    stats(MirrorWritten("prompts", 2, "withdraw", "withdrawn"))
    stats(ContentChanged("prompts", 1, "a" * 16, "b" * 16, "realtime", 0.0))
    stats(ContentChanged("prompts", 3, None, "c" * 16, "sync", 0.0))
    assert (stats.mirror_writes, stats.mirror_write_errors, stats.withdrawals) == (1, 1, 1)
    assert stats.drifts == 1


def test_copies_are_independent():
    stats = Stats()
    stats(OriginFetched("prompts", 1, "caller", False, "error", 1, "X", 0.0, 0.1))
    copy = stats.copy()
    stats(OriginFetched("prompts", 1, "caller", False, "error", 1, "X", 0.0, 0.1))
    assert copy.origin_errors == {"X": 1}
    assert stats.origin_errors == {"X": 2}
    assert stats.as_dict()["origin_errors"] == {"X": 2}


@pytest.mark.anyio
async def test_hits_reach_a_hit_counting_hook_exactly_once_even_around_a_waiting_miss():
    import anyio

    from storybench_prompts import CachingRepository
    from tests.fakes import FakeClock, ScriptedOrigin

    class Counting:
        def __init__(self) -> None:
            self.hits = 0

        def __call__(self, event) -> None:
            pass

        def hit_counter(self, kind):
            def count(n: int = 1) -> None:
                self.hits += n

            return count

    hook = Counting()
    origin = ScriptedOrigin()
    clock = FakeClock()
    async with CachingRepository(origin, hooks=[hook], clock=clock, sleep=clock.sleep) as repo:
        await repo.get(1)
        origin.gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(repo.get, 2)  # a miss that waits for Directus
            await anyio.wait_all_tasks_blocked()
            for _ in range(5):
                await repo.get(1)  # hits meanwhile, each reported when its call ends
            assert hook.hits == 5
            origin.gate.set()
        await repo.latest()
        await repo.latest()
        await repo.get_by_hash((await repo.get(1)).config_hash)
        assert hook.hits == repo.stats().hits == 8


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["count", "make"])
async def test_a_hit_counter_that_raises_never_breaks_a_lookup(where, caplog):
    from storybench_prompts import CachingRepository
    from tests.fakes import ScriptedOrigin

    class Broken:
        def __call__(self, event) -> None:
            pass

        def hit_counter(self, kind):
            if where == "make":
                raise RuntimeError("no meter")

            def count(n: int = 1) -> None:
                raise RuntimeError("metrics backend down")

            return count

    async with CachingRepository(ScriptedOrigin(), hooks=[Broken()]) as repo:
        first = await repo.get(1)
        for _ in range(3):
            served = await repo.get(1)  # a hit, reported to the broken counter
            assert served.config_hash == first.config_hash
        assert repo.stats().hits == 3
    raised = [r for r in caplog.records if r.exc_info and "RuntimeError" in repr(r.exc_info[1])]
    assert len(raised) == 1  # logged once
