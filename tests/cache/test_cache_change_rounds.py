"""Revalidation after Directus's change events: only the touched versions, batched, in rounds
that coalesce a burst, spaced apart, never blocking a reader. Fake clock and sleep throughout."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import pytest

from storybench_prompts import (
    CachePolicy,
    CachingRepository,
    DirectusPoolTimeoutError,
    InvalidPromptSetError,
    OriginState,
    PromptSet,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
)
from storybench_prompts._defaults import (
    DEFAULT_RECONNECT_SPREAD,
    DEFAULT_REVALIDATION_DEBOUNCE,
    DEFAULT_REVALIDATION_SPACING,
)
from tests.factories import flat_set
from tests.fakes import FakeClock, ScriptedOrigin

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

POLICY = CachePolicy(pinned_ttl=1000, latest_ttl=1000, fallback_after=0.2)


def keyed(version: int, text_suffix: str = "") -> PromptSet:
    """Version ``version`` as read from Directus: its own sequence and prompt, and the
    sequence 99 every version shares."""
    content = flat_set(version, text_suffix=text_suffix)
    return content.read_from(
        {
            "prompt_set_versions": frozenset({100 + version}),
            "prompt_sequences": frozenset({version * 10, 99}),
            "prompt_sequences_prompts": frozenset({version * 100}),
            "prompts": frozenset({version * 1000, 9999}),
        }
    )


class BatchedOrigin(ScriptedOrigin):
    """A scripted origin that also reads many versions in one request, as Directus does."""

    def __init__(self, versions: dict[int, Any]) -> None:
        super().__init__(versions)
        self.batches: list[tuple[int, ...]] = []

    async def get_many(self, versions: Iterable[int]) -> dict[int, Any]:
        wanted = tuple(sorted(versions))
        self.batches.append(wanted)
        self.calls.append(("many", wanted))
        if self.gate is not None:
            await self.gate.wait()
        else:
            await anyio.sleep(0)
        if self.error is not None:
            raise self.error
        return {v: self.sets[v] for v in wanted if v in self.sets}


class AnswersWhenAsked(BatchedOrigin):
    """Decides its answer when asked and delivers it when the gate opens (a slow answer)."""

    async def get(self, version: int) -> Any:
        answer = self.sets.get(version)
        self.calls.append(version)
        if self.gate is not None:
            await self.gate.wait()
        if answer is None:
            raise PromptSetNotFoundError(f"no version {version}", version=version)
        return answer

    async def latest(self) -> Any:
        answer = self.sets[max(self.sets)]
        self.calls.append("latest")
        if self.gate is not None:
            await self.gate.wait()
        return answer


def cached(clock: FakeClock, origin: ScriptedOrigin, rand: float = 0.5) -> CachingRepository:
    return CachingRepository(
        origin, policy=POLICY, clock=clock, sleep=clock.sleep, rand=lambda: rand
    )


async def warm(repo: CachingRepository, origin: BatchedOrigin, versions: Iterable[int]) -> None:
    for v in versions:
        await repo.get(v)
    await repo.latest()
    origin.calls.clear()
    origin.batches.clear()


async def test_an_edit_refetches_only_the_versions_holding_it_in_one_request():
    origin = BatchedOrigin({v: keyed(v) for v in range(1, 21)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, range(1, 21))
        origin.sets[7] = keyed(7, " edited")
        repo.changed("prompts", "update", [{"id": "7000"}])
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        assert origin.calls == [("many", (7,))]
        assert (await repo.get(7)).config_hash == keyed(7, " edited").config_hash
        for v in (1, 8, 20):
            assert (await repo.get(v)).provenance.stale is False  # untouched: still hits
        assert origin.calls == [("many", (7,))]


async def test_an_edit_of_a_shared_sequence_refetches_every_holder_batched_with_latest():
    origin = BatchedOrigin({v: keyed(v) for v in range(1, 6)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, range(1, 6))
        origin.sets = {v: keyed(v, " shared edit") for v in range(1, 6)}
        repo.changed("prompts", "update", [{"id": 9999}])
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        # "latest" follows its version's new content: no request of its own
        assert origin.calls == [("many", (1, 2, 3, 4, 5))]
        latest = await repo.latest()
        assert latest.version == 5
        assert latest.config_hash == keyed(5, " shared edit").config_hash
        assert latest.provenance.stale is False


async def test_a_burst_of_edits_costs_a_round_and_events_during_a_round_join_the_next():
    origin = BatchedOrigin({v: keyed(v) for v in range(1, 11)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, range(1, 11))
        for v in (1, 2, 3):
            repo.changed("prompts", "update", [{"id": v * 1000}])
        origin.gate = anyio.Event()  # the round's read is slow
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        assert origin.batches == [(1, 2, 3)]
        for v in (4, 5, 6, 4):  # arrive while the round runs
            repo.changed("prompts", "update", [{"id": v * 1000}])
        origin.gate.set()
        origin.gate = None
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        # the next round waits for the spacing after the previous one started
        assert origin.batches == [(1, 2, 3)]
        await clock.run_for(DEFAULT_REVALIDATION_SPACING)
        assert origin.batches == [(1, 2, 3), (4, 5, 6)]


async def test_a_reader_of_a_version_being_refetched_is_answered_at_once_marked_stale():
    origin = BatchedOrigin({1: keyed(1)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [1])
        origin.sets[1] = keyed(1, " edited")
        origin.gate = anyio.Event()
        repo.changed("prompts", "update", [{"id": 1000}])
        before_round = await repo.get(1)  # the round is planned, not started
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        during = await repo.get(1)  # the round's read hangs
        for served in (before_round, during):
            assert served.provenance.stale is True
            assert served.config_hash == keyed(1).config_hash
        origin.gate.set()
        await anyio.wait_all_tasks_blocked()
        after = await repo.get(1)
        assert (after.config_hash, after.provenance.stale) == (
            keyed(1, " edited").config_hash,
            False,
        )


async def test_a_local_pool_timeout_does_not_mark_directus_down_and_is_retried():
    origin = BatchedOrigin({1: keyed(1), 2: keyed(2)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [1, 2])
        origin.sets[1] = keyed(1, " edited")
        origin.error = DirectusPoolTimeoutError("no free connection in the local pool")
        repo.changed("prompts", "update", [{"id": 1000}])
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        assert origin.batches  # the round ran and timed out waiting for a connection
        assert repo.status().state is OriginState.VALID
        assert (await repo.get(1)).provenance.origin_error is None
        origin.error = None
        await clock.run_for(DEFAULT_REVALIDATION_SPACING)  # the keys are in the next round
        assert origin.batches[-1] == (1,)
        assert (await repo.get(1)).config_hash == keyed(1, " edited").config_hash


async def test_a_version_published_asks_for_latest_on_its_own():
    origin = BatchedOrigin({1: keyed(1), 2: keyed(2)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [1, 2])
        origin.sets[3] = keyed(3)
        repo.changed(
            "prompt_set_versions",
            "create",
            [{"id": 103, "version_number": 3, "status": "published"}],
        )
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        assert origin.calls == ["latest"]  # versions 1 and 2 are untouched
        assert (await repo.latest()).version == 3


async def test_a_draft_created_costs_nothing():
    origin = BatchedOrigin({1: keyed(1)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [1])
        repo.changed(
            "prompt_set_versions", "create", [{"id": 102, "version_number": 2, "status": "draft"}]
        )
        await clock.run_for(DEFAULT_REVALIDATION_SPACING)
        assert origin.calls == []
        assert (await repo.get(1)).provenance.stale is False


async def test_after_a_reconnect_one_round_checks_what_was_fetched_before_after_a_spread():
    origin = BatchedOrigin({v: keyed(v) for v in range(1, 4)})
    clock = FakeClock()
    async with cached(clock, origin, rand=0.5) as repo:
        await warm(repo, origin, range(1, 4))
        repo.connected()
        await clock.run_for(0.5 * DEFAULT_RECONNECT_SPREAD - 0.01)
        assert origin.calls == []  # this process's share of the spread has not passed
        # meanwhile the entries are served as they are: a reconnect invalidates nothing
        assert (await repo.get(2)).provenance.stale is False
        await clock.run_for(0.02)
        assert sorted(origin.calls, key=str) == sorted([("many", (1, 2, 3)), "latest"], key=str)


async def test_entries_fetched_after_the_subscription_held_are_not_fetched_again():
    origin = BatchedOrigin({1: keyed(1), 2: keyed(2)})
    clock = FakeClock()
    async with cached(clock, origin, rand=1.0) as repo:
        await repo.get(1)  # before the channel is subscribed
        repo.connected()
        clock.advance(0.1)
        await repo.get(2)  # after: realtime covers it
        stats_before = repo.stats().hits
        assert (await repo.get(2)).provenance.stale is False
        assert repo.stats().hits == stats_before + 1  # a second get is a hit
        origin.calls.clear()
        await clock.run_for(DEFAULT_RECONNECT_SPREAD)
        assert ("many", (1,)) in origin.calls
        assert not any(call == ("many", (1, 2)) or call == 2 for call in origin.calls)


async def test_an_edit_during_the_read_of_its_version_is_never_hidden_by_that_read():
    origin = BatchedOrigin({1: keyed(1), 2: keyed(2)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [1, 2])
        repo.changed("prompts", "update", [{"id": 1000}])
        origin.gate = anyio.Event()
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)  # the round reads version 1...
        origin.sets[1] = keyed(1, " edited")
        repo.changed("prompts", "update", [{"id": 1000}])  # ...and it is edited meanwhile
        origin.gate.set()
        origin.gate = None
        await anyio.wait_all_tasks_blocked()
        # the read may predate the edit: served, but marked stale, until the next round
        assert (await repo.get(1)).provenance.stale is True
        await clock.run_for(DEFAULT_REVALIDATION_SPACING)
        assert origin.batches == [(1,), (1,)]
        again = await repo.get(1)
        assert (again.config_hash, again.provenance.stale) == (
            keyed(1, " edited").config_hash,
            False,
        )
        assert (await repo.get(2)).provenance.stale is False


async def test_a_publication_during_a_latest_fetch_is_not_lost():
    origin = AnswersWhenAsked({1: keyed(1), 2: keyed(2)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        origin.gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(repo.latest)  # asks for the latest: v2, slowly
            await anyio.wait_all_tasks_blocked()
            origin.sets[3] = keyed(3)  # v3 is published meanwhile...
            repo.changed(
                "prompt_set_versions",
                "update",
                [{"id": 103, "version_number": 3, "status": "published"}],
            )
            await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)  # a round while it is asked
            origin.gate.set()
        origin.gate = None
        # The answer may predate the publication: never served as fresh, and asked again.
        assert (await repo.latest()).provenance.stale is True
        await clock.run_for(DEFAULT_REVALIDATION_SPACING)
        latest = await repo.latest()
        assert (latest.version, latest.provenance.stale) == (3, False)


async def test_a_not_found_that_a_publication_raced_is_not_remembered():
    origin = AnswersWhenAsked({1: keyed(1)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        origin.gate = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                with pytest.raises(PromptSetNotFoundError):
                    await repo.get(5)

            tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
            origin.sets[5] = keyed(5)
            repo.changed(
                "prompt_set_versions",
                "update",
                [{"id": 105, "version_number": 5, "status": "published"}],
            )
            origin.gate.set()
        origin.gate = None
        assert (await repo.get(5)).version == 5  # asked again, not "no such version"


async def test_an_answer_a_change_raced_reaches_its_caller_marked_stale():
    origin = BatchedOrigin({1: keyed(1)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        origin.gate = anyio.Event()
        got: list[PromptSet] = []
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                got.append(await repo.get(1))

            tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
            origin.sets[1] = keyed(1, " edited")
            repo.changed("prompts", "update", [{"id": 1000}])
            origin.gate.set()
        assert got[0].provenance.stale is True


async def test_invalid_content_is_not_asked_for_again_until_a_change_touches_it():
    origin = BatchedOrigin({1: keyed(1)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [1])
        origin.sets[1] = InvalidPromptSetError(["v1 > prompt text: empty"])  # as get_many maps it
        repo.changed("prompts", "update", [{"id": 1000}])
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        asked = len(origin.calls)
        for _ in range(50):
            served = await repo.get(1)
            assert served.provenance.stale is True
            assert served.provenance.origin_error == "InvalidPromptSetError"
        assert len(origin.calls) == asked  # the refusal stands: no request per call
        origin.sets[1] = keyed(1, " fixed")
        repo.changed("prompts", "update", [{"id": 1000}])  # the editor fixes it
        await clock.run_for(DEFAULT_REVALIDATION_SPACING)
        fixed = await repo.get(1)
        assert (fixed.config_hash, fixed.provenance.stale) == (
            keyed(1, " fixed").config_hash,
            False,
        )


async def test_invalidating_a_refused_version_asks_directus_again():
    origin = BatchedOrigin({1: keyed(1)})
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [1])
        origin.sets[1] = InvalidPromptSetError(["v1 > prompt text: empty"])
        repo.changed("prompts", "update", [{"id": 1000}])
        await clock.run_for(DEFAULT_REVALIDATION_DEBOUNCE)
        assert (await repo.get(1)).provenance.origin_error == "InvalidPromptSetError"
        origin.sets[1] = keyed(1, " fixed")
        origin.calls.clear()
        repo.invalidate(1)  # the caller knows better: the refusal is forgotten with the entry
        fixed = await repo.get(1)
        assert fixed.config_hash == keyed(1, " fixed").config_hash
        assert origin.calls == [1]


async def test_a_refused_version_never_cached_is_asked_again_after_any_change_of_its_kind():
    class Refusing(BatchedOrigin):
        async def get(self, version: int) -> Any:
            answer = await super().get(version)
            if isinstance(answer, Exception):
                raise answer
            return answer

    origin = Refusing({1: keyed(1), 2: keyed(2)})
    origin.sets[1] = InvalidPromptSetError(["v1 > prompt text: empty"])
    clock = FakeClock()
    async with cached(clock, origin) as repo:
        await warm(repo, origin, [2])
        for _ in range(2):  # no copy anywhere: unavailable, naming the refusal
            with pytest.raises(PromptSetUnavailableError, match="InvalidPromptSetError"):
                await repo.get(1)
        assert origin.calls.count(1) == 1  # the refusal stands
        origin.sets[1] = keyed(1)
        # The fix is in a prompt row the refusal could not be mapped to.
        repo.changed("prompts", "update", [{"id": 1000}])
        assert (await repo.get(1)).config_hash == keyed(1).config_hash
