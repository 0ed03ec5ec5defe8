"""The stack: one lifecycle for every kind, the channel run whatever the kinds, changes
dispatched by collection, and each origin and mirror closed once."""

import anyio
import pytest

from storybench_prompts import EVALUATION_SETS, PROMPT_SETS, CachingRepository, InMemoryMirror
from storybench_prompts.cache.outage import OriginHealth, OutageGate, ProbeSchedule
from storybench_prompts.cache.stack import Stack
from storybench_prompts.sources.realtime import ChannelState, ChannelStatus
from tests.factories import flat_evaluation_set, flat_set
from tests.fakes import FakeClock, ScriptedOrigin

pytestmark = pytest.mark.anyio


class Channel:
    def __init__(self):
        self.runs = 0
        self.status = ChannelStatus(state=ChannelState.OFF, since=0.0)

    async def run(self):
        self.runs += 1
        self.status = ChannelStatus(state=ChannelState.OPEN, since=0.0)
        await anyio.sleep_forever()


def evaluation_origin():
    return ScriptedOrigin({1: flat_evaluation_set(1)})


def shared_stack():
    clock = FakeClock()
    return Stack(OutageGate(OriginHealth("directus"), ProbeSchedule(clock))), clock


async def test_a_standalone_repository_of_any_kind_runs_its_channel():
    channel = Channel()
    repo = CachingRepository(
        evaluation_origin(),
        InMemoryMirror(kind=EVALUATION_SETS),
        kind=EVALUATION_SETS,
        channel=channel,
    )
    async with repo:
        await anyio.sleep(0.01)
        assert channel.runs == 1
        assert repo.channel_status().state == "open"


async def test_entering_one_repository_enters_the_stack_once_and_closes_each_resource_once():
    stack, clock = shared_stack()
    prompts_origin, evaluations_origin = ScriptedOrigin(), evaluation_origin()
    evaluations = CachingRepository(
        evaluations_origin, kind=EVALUATION_SETS, stack=stack, clock=clock, sleep=clock.sleep
    )
    prompts = CachingRepository(
        prompts_origin, kind=PROMPT_SETS, stack=stack, clock=clock, sleep=clock.sleep
    )
    async with prompts:
        assert (await evaluations.get(1)).version == 1  # the other kind works: same task group
        with pytest.raises(RuntimeError, match="entered once"):
            await evaluations.__aenter__()
    assert prompts_origin.closed
    assert evaluations_origin.closed
    with pytest.raises(RuntimeError, match="entered once"):
        await prompts.__aenter__()


async def test_a_change_refreshes_only_the_kinds_that_read_its_collection():
    stack, clock = shared_stack()
    evaluations_origin = evaluation_origin()
    prompts_origin = ScriptedOrigin()
    evaluations = CachingRepository(
        evaluations_origin, kind=EVALUATION_SETS, stack=stack, clock=clock, sleep=clock.sleep
    )
    prompts = CachingRepository(
        prompts_origin, kind=PROMPT_SETS, stack=stack, clock=clock, sleep=clock.sleep
    )
    async with prompts:
        await prompts.get(1)
        await evaluations.get(1)
        stack.content_changed("evaluation_criteria")
        await clock.run_for(1.0)
        assert evaluations_origin.calls == [1, 1]
        assert prompts_origin.calls == [1]
        stack.content_changed("prompts")
        await clock.run_for(1.0)
        assert prompts_origin.calls == [1, 1]
        stack.content_changed(None)
        await clock.run_for(1.0)
        assert prompts_origin.calls == [1, 1, 1]
        assert evaluations_origin.calls == [1, 1, 1]


async def test_background_work_needs_an_entered_stack():
    repo = CachingRepository(ScriptedOrigin(), kind=PROMPT_SETS)
    with pytest.raises(RuntimeError, match="async with"):
        await repo.get(1)


async def test_a_channel_is_attached_before_entering():
    repo = CachingRepository(ScriptedOrigin(), kind=PROMPT_SETS)
    async with repo:
        with pytest.raises(RuntimeError, match="before entering"):
            repo.attach_channel(Channel())
    assert flat_set(1).version == 1
