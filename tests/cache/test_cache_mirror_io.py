"""The cache's side of the mirror: bounded and shared reads, writes in the background that
never raise, and the drain on leaving."""

import anyio
import pytest

from storybench_prompts import EVALUATION_SETS, PROMPT_SETS, InMemoryMirror, SourceUnavailableError
from storybench_prompts._events import MirrorWritten
from storybench_prompts.cache.mirror_io import MirrorIO
from tests.factories import flat_set
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


class SlowMirror(InMemoryMirror):
    def __init__(self, sets=(), gate: anyio.Event | None = None, fail: BaseException | None = None):
        super().__init__(list(sets), kind=PROMPT_SETS)
        self.gate = gate
        self.fail = fail
        self.reads = 0

    async def get(self, version):
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        return await super().get(version)

    async def save(self, content):
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return await super().save(content)


def io(mirror, clock, events):
    return MirrorIO(mirror, kind=PROMPT_SETS, timeout=3.0, sleep=clock.sleep, emit=events.append)


async def test_a_stalled_read_gives_up_at_mirror_timeout_by_the_injected_clock():
    clock, events = FakeClock(), []
    mirror_io = io(SlowMirror([flat_set(1)], gate=anyio.Event()), clock, events)
    async with anyio.create_task_group() as tg:
        results = []

        async def read():
            results.append(await mirror_io.read(1, tg))

        tg.start_soon(read)
        while not clock.sleepers:
            await anyio.sleep(0)
        clock.advance(3.0)
    assert isinstance(results[0], SourceUnavailableError)
    assert "did not answer reading 1 within 3 s" in str(results[0])


async def test_concurrent_reads_of_one_key_are_one_mirror_read():
    clock, events = FakeClock(), []
    gate = anyio.Event()
    mirror = SlowMirror([flat_set(1)], gate=gate)
    mirror_io = io(mirror, clock, events)
    results = []
    async with anyio.create_task_group() as tg:
        for _ in range(100):

            async def read():
                results.append(await mirror_io.read(1, tg))

            tg.start_soon(read)
        await anyio.sleep(0.01)
        gate.set()
    assert mirror.reads == 1
    assert {r.config_hash for r in results} == {flat_set(1).config_hash}
    assert mirror_io.hashes == {1: flat_set(1).config_hash}


async def test_a_write_is_skipped_when_the_mirror_holds_the_hash():
    clock, events = FakeClock(), []
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    mirror_io = io(mirror, clock, events)
    async with anyio.create_task_group() as tg:
        mirror_io.save_behind(flat_set(1), tg)
    assert mirror.saves == 1
    async with anyio.create_task_group() as tg:
        mirror_io.save_behind(flat_set(1), tg)
    assert mirror.saves == 1
    assert [e.outcome for e in events if isinstance(e, MirrorWritten)] == ["new"]


async def test_a_failing_write_of_any_type_is_counted_never_raised():
    clock, events = FakeClock(), []
    mirror_io = io(SlowMirror(fail=KeyError("driver bug")), clock, events)
    async with anyio.create_task_group() as tg:
        mirror_io.save_behind(flat_set(1), tg)
    assert events == [MirrorWritten("prompts", 1, "save", "error", "KeyError")]
    assert 1 not in mirror_io.hashes


async def test_withdrawals_are_written_and_emitted():
    clock, events = FakeClock(), []
    mirror = InMemoryMirror([flat_set(1), flat_set(2), flat_set(3)], kind=PROMPT_SETS)
    mirror_io = io(mirror, clock, events)
    remembered = []
    async with anyio.create_task_group() as tg:
        mirror_io.withdraw_above_behind(1, tg, remembered.extend)
    assert remembered == [2, 3]
    assert [v.version for v in await mirror.versions()] == [1]
    assert [(e.version, e.outcome) for e in events] == [(2, "withdrawn"), (3, "withdrawn")]


async def test_drain_waits_for_a_write_in_progress_at_most_mirror_timeout():
    clock, events = FakeClock(), []
    gate = anyio.Event()
    mirror = SlowMirror(gate=gate)
    mirror_io = io(mirror, clock, events)
    async with anyio.create_task_group() as tg:
        mirror_io.save_behind(flat_set(1), tg)
        await anyio.sleep(0)
        drained = anyio.Event()

        async def drain():
            await mirror_io.drain()
            drained.set()

        tg.start_soon(drain)
        await anyio.sleep(0.01)
        assert not drained.is_set()
        gate.set()
        with anyio.fail_after(2):
            await drained.wait()
    assert mirror.saves == 1


async def test_kind_is_the_mirror_io_s_own():
    mirror_io = MirrorIO(
        InMemoryMirror(kind=EVALUATION_SETS),
        kind=EVALUATION_SETS,
        timeout=1,
        sleep=anyio.sleep,
        emit=lambda e: None,
    )
    assert mirror_io.hashes == {}
