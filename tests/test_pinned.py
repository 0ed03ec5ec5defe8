"""Pinned runs: one content from start to end of a run, and a record of what changed meanwhile.

The repository here is the real engine over a scripted origin; a change in "Directus" is a
change of the origin's answers followed by the event the realtime channel would send
(``content_changed``)."""

from __future__ import annotations

import anyio
import pytest

from storybench_prompts import (
    EVALUATION_SETS,
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    ConfigurationError,
    InMemoryMirror,
    Lock,
    LockedSet,
    PinnedRun,
    RunDrift,
)
from tests.factories import flat_evaluation_set, flat_set
from tests.fakes import ScriptedOrigin

pytestmark = pytest.mark.anyio


def build(**policy) -> tuple[CachingRepository, ScriptedOrigin, ScriptedOrigin]:
    prompts_origin = ScriptedOrigin({v: flat_set(v) for v in (1, 2, 3)})
    evaluations_origin = ScriptedOrigin({v: flat_evaluation_set(v) for v in (1, 2)})
    evaluations = CachingRepository(
        evaluations_origin,
        InMemoryMirror(kind=EVALUATION_SETS),
        kind=EVALUATION_SETS,
        policy=CachePolicy(**policy),
    )
    repo = CachingRepository(
        prompts_origin,
        InMemoryMirror(kind=PROMPT_SETS),
        evaluations=evaluations,
        policy=CachePolicy(**policy),
    )
    return repo, prompts_origin, evaluations_origin


async def settle(predicate, seconds: float = 2.0) -> None:
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.001)


async def test_latest_resolves_once_and_get_returns_what_was_first_seen():
    repo, origin, _ = build()
    async with repo, repo.pinned() as run:
        assert isinstance(run, PinnedRun)
        first = await run.latest()
        two = await run.get(2)
        origin.sets[4] = flat_set(4)  # a new latest is published
        origin.sets[2] = flat_set(2, text_suffix=" (edited)")  # and v2 edited in place
        repo.content_changed(None)  # the realtime channel's event
        await settle(lambda: repo.peek() is not None and repo.peek().version == 4)
        await settle(lambda: repo.peek(2).config_hash == origin.sets[2].config_hash)
        assert (await repo.latest()).version == 4  # outside the run: as now
        assert (await repo.get(2)).config_hash == origin.sets[2].config_hash
        for _ in range(3):
            assert await run.latest() is first  # inside: the first content throughout
            assert (await run.latest()).config_hash == flat_set(3).config_hash
            assert (await run.get(2)).config_hash == two.config_hash == flat_set(2).config_hash
        assert (await run.get(3)) is first  # latest's version is the same pinned set
        drifts = run.drifts
        assert (
            RunDrift(
                "prompts",
                2,
                flat_set(2).config_hash,
                origin.sets[2].config_hash,
                "edited",
                2,
                at=drifts[0].at,
            )
            in drifts
        )
        latest_drift = next(d for d in drifts if d.change == "latest")
        assert (latest_drift.kind, latest_drift.version, latest_drift.pinned_version) == (
            "prompts",
            4,
            3,
        )
        assert latest_drift.old_hash == first.config_hash
        assert latest_drift.new_hash == flat_set(4).config_hash
        assert len(drifts) == 2  # each recorded once


async def test_the_next_run_sees_the_new_content():
    repo, origin, _ = build()
    async with repo:
        async with repo.pinned() as run:
            assert (await run.latest()).version == 3
            origin.sets[4] = flat_set(4)
            repo.content_changed(None)
            await settle(lambda: repo.peek().version == 4)
            assert (await run.latest()).version == 3
        async with repo.pinned() as later:
            assert (await later.latest()).version == 4
            assert later.drifts == []


async def test_evaluations_are_pinned_in_the_same_run():
    repo, _, eval_origin = build()
    async with repo, repo.pinned() as run:
        criteria = await run.evaluations.latest()
        assert criteria.version == 2
        eval_origin.sets[2] = flat_evaluation_set(2, text_suffix=" (stricter)")
        repo.evaluations.content_changed(None)
        await settle(lambda: repo.evaluations.peek().config_hash != criteria.config_hash)
        assert await run.evaluations.latest() is criteria
        assert [(d.kind, d.version, d.change) for d in run.drifts] == [("evaluations", 2, "edited")]
        assert run.evaluations.drifts == run.drifts  # one run, one record


async def test_a_drift_noticed_by_the_repository_is_recorded_from_its_event():
    repo, origin, _ = build()
    async with repo, repo.pinned() as run:
        pinned = await run.get(1)
        origin.sets[1] = flat_set(1, text_suffix=" (edited)")
        repo.invalidate(1)
        repo.refresh_all()
        await repo.get(1)  # another caller gets the new content; the engine notices drift
        assert [(d.version, d.old_hash) for d in run.drifts] == [(1, pinned.config_hash)]


async def test_compare_asks_the_repository_now():
    repo, origin, _ = build(latest_ttl=0)
    async with repo, repo.pinned() as run:
        await run.latest()
        origin.sets[5] = flat_set(5)
        repo.invalidate()  # nothing in the cache tells the run
        assert run.drifts == []
        drifts = await run.compare()
        assert [(d.version, d.change) for d in drifts] == [(5, "latest")]
        assert (await run.latest()).version == 3


async def test_concurrent_first_calls_resolve_once():
    repo, origin, _ = build()
    async with repo, repo.pinned() as run:
        got = []

        async def one() -> None:
            got.append(await run.latest())

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert all(g is got[0] for g in got)
        assert origin.calls.count("latest") == 1


async def test_the_run_stops_listening_when_it_ends():
    repo, origin, _ = build()
    async with repo:
        async with repo.pinned() as run:
            await run.latest()
        assert run._on_event not in repo.stack.hooks._hooks
        origin.sets[4] = flat_set(4)
        repo.content_changed(None)
        await settle(lambda: repo.peek().version == 4)
        assert run.drifts == []  # noticed only while the run was open


async def test_lock_names_what_the_run_pinned():
    repo, _, _ = build()
    async with repo, repo.pinned() as run:
        with pytest.raises(RuntimeError, match="no prompt set"):
            run.lock()
        latest = await run.latest()
        criteria = await run.evaluations.get(1)
        lock = run.lock()
        assert isinstance(lock, Lock)
        assert lock.prompt_set == LockedSet(3, latest.config_hash)
        assert lock.evaluation_set == LockedSet(1, criteria.config_hash)
        assert lock.directus_url is None  # a scripted origin has no URL


async def test_a_run_of_one_version_locks_it_and_several_need_a_latest():
    repo, _, _ = build()
    async with repo, repo.pinned() as run:
        await run.get(2)
        assert run.lock().prompt_set.version == 2
        assert run.lock().evaluation_set is None
        await run.get(1)
        with pytest.raises(RuntimeError, match=r"versions \[1, 2\]"):
            run.lock()


async def test_a_repository_without_evaluations_says_so():
    repo = CachingRepository(ScriptedOrigin(), kind=PROMPT_SETS)
    async with repo, repo.pinned() as run:
        with pytest.raises(ConfigurationError, match="no evaluations"):
            _ = run.evaluations
        assert (await run.latest()).version == 3
