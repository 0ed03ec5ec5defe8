"""The outage gate under the fake clock: transitions (logged and emitted once), the probe
schedule and its one slot, and the one backoff."""

import logging

import pytest

from storybench_prompts import DirectusAuthenticationError, DirectusServerError, OriginState
from storybench_prompts._events import StateChanged
from storybench_prompts.cache.outage import OriginHealth, OutageGate, ProbeSchedule
from storybench_prompts.sources.retry import backoff
from tests.fakes import FakeClock


def gate(rand=lambda: 1.0):
    clock = FakeClock()
    events: list = []
    health = OriginHealth("directus", wall_clock=clock, emit=events.append)
    return (
        OutageGate(health, ProbeSchedule(clock, initial=0.5, maximum=4.0, rand=rand)),
        clock,
        events,
    )


def test_transitions_are_emitted_once_each(caplog):
    g, _clock, events = gate()
    assert g.status.state is OriginState.INITIALIZING
    assert not g.failing
    with caplog.at_level(logging.INFO, logger="storybench_prompts.outage"):
        for _ in range(3):
            g.failed(DirectusServerError("503", status=503))
        assert g.failing
        g.answered()
        g.answered()
    changes = [(e.old, e.new) for e in events if isinstance(e, StateChanged)]
    assert changes == [
        (OriginState.INITIALIZING, OriginState.INTERRUPTED),
        (OriginState.INTERRUPTED, OriginState.VALID),
    ]
    assert events[0].error_kind == "DirectusServerError"
    assert events[1].status.state is OriginState.VALID
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if "answering again" in r.getMessage()]
    assert len(warnings) == 1
    assert len(infos) == 1


def test_a_rejected_token_is_an_error_log_once(caplog):
    g, _, _ = gate()
    with caplog.at_level(logging.ERROR, logger="storybench_prompts.outage"):
        g.failed(DirectusAuthenticationError("401", status=401))
        g.failed(DirectusAuthenticationError("401", status=401))
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert g.status.auth_failed


def test_one_probe_slot_at_a_time_released_by_its_with_block():
    g, clock, _ = gate()
    g.failed(DirectusServerError("503", status=503))
    assert g.probe() is None  # not due yet
    clock.advance(0.5)
    slot = g.probe()
    assert slot is not None
    assert g.probe() is None  # taken
    with pytest.raises(RuntimeError), slot:
        raise RuntimeError("the probe's fetch died")
    assert g.probe() is not None  # released whatever happened


def test_probes_back_off_from_initial_to_maximum_then_reset():
    g, clock, _ = gate(rand=lambda: 1.0)
    waits = []
    for _ in range(6):
        g.failed(DirectusServerError("503", status=503))
        waits.append(g.next_probe_in(clock()))
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    g.answered()
    assert g.next_probe_in(clock()) == 0.0


def test_probe_jitter_stays_in_the_upper_half():
    g, clock, _ = gate(rand=lambda: 0.0)
    g.failed(DirectusServerError("503", status=503))
    assert g.next_probe_in(clock()) == 0.25


def test_the_one_backoff():
    assert backoff(0, initial=0.2, maximum=5.0, rand=lambda: 1.0) == 0.2
    assert backoff(3, initial=0.2, maximum=5.0, rand=lambda: 1.0) == pytest.approx(1.6)
    assert backoff(10, initial=0.2, maximum=5.0, rand=lambda: 1.0) == 5.0
    assert backoff(3, initial=0.2, maximum=5.0, rand=lambda: 0.0) == 0.0  # full jitter
    assert backoff(3, initial=0.2, maximum=5.0, rand=lambda: 0.0, jitter=0.5) == pytest.approx(0.8)
    assert backoff(3, initial=0.2, maximum=5.0, rand=lambda: 0.3, jitter=0.0) == pytest.approx(1.6)
    # An outage of days: the exponent is capped, so the wait never overflows.
    assert backoff(5000, initial=0.5, maximum=30.0, rand=lambda: 1.0) == 30.0
