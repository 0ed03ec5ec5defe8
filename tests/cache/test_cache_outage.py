"""The outage gate under the fake clock: transitions (logged and emitted once), the probe
schedule and its one slot, and the one backoff."""

import logging

import pytest

from storybench_prompts import (
    DirectusAuthenticationError,
    DirectusConfigurationError,
    DirectusConnectionError,
    DirectusForbiddenError,
    DirectusInvalidResponseError,
    DirectusRateLimitedError,
    DirectusRequestError,
    DirectusServerError,
    DirectusTimeoutError,
    FetchInterruptedError,
    InvalidPromptSetError,
    OriginState,
    Problem,
)
from storybench_prompts._events import StateChanged
from storybench_prompts._exceptions import DirectusPoolTimeoutError
from storybench_prompts.cache.outage import OriginHealth, OutageGate, ProbeSchedule, failure_class
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


def test_probes_back_off_once_per_failed_probe_not_per_attempt():
    g, clock, _ = gate(rand=lambda: 1.0)
    assert g.failed(DirectusServerError("503", status=503)) is True  # the outage starts
    assert g.next_probe_in(clock()) == 0.5
    for _ in range(5):  # fetches that were in flight fail too: the schedule does not move
        assert g.failed(DirectusServerError("503", status=503)) is False
    assert g.next_probe_in(clock()) == 0.5
    waits = []
    for _ in range(5):
        g.failed(DirectusServerError("503", status=503), probe=True)
        waits.append(g.next_probe_in(clock()))
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    g.answered()
    assert g.next_probe_in(clock()) == 0.0


def test_the_same_failure_reported_twice_counts_once():
    g, clock, _ = gate(rand=lambda: 1.0)
    error = DirectusServerError("503", status=503)
    g.failed(error)
    g.failed(error, probe=True)  # the fetch reports what its retry loop already did
    assert g.next_probe_in(clock()) == 0.5


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (DirectusServerError("503", status=503), "outage"),
        (DirectusConnectionError("refused"), "outage"),
        (DirectusTimeoutError("slow"), "outage"),
        (DirectusRateLimitedError("429", status=429), "outage"),
        (DirectusForbiddenError("403", status=403), "answer"),
        (DirectusRequestError("400", status=400), "answer"),
        (InvalidPromptSetError([Problem("x", "empty")]), "answer"),
        (DirectusInvalidResponseError("too big"), "answer"),
        (DirectusPoolTimeoutError("pool"), "local"),
        (FetchInterruptedError("cancelled"), "local"),
        (DirectusAuthenticationError("401", status=401), "needs_a_person"),
        (DirectusConfigurationError("html", setting="DIRECTUS_URL"), "needs_a_person"),
    ],
)
def test_what_counts_as_directus_failing(error, cls):
    assert failure_class(error) == cls
    g, _, _ = gate()
    g.failed(error)
    assert g.failing is (cls in ("outage", "needs_a_person"))
    assert (g.refusal() is not None) is (cls == "needs_a_person")


def test_a_refusal_stays_until_directus_answers_whatever_fails_next():
    g, _, _ = gate()
    g.failed(DirectusAuthenticationError("401", status=401, setting="DIRECTUS_TOKEN"))
    g.failed(DirectusConnectionError("refused"))  # Directus becomes unreachable later
    refusal = g.refusal()
    assert isinstance(refusal, DirectusAuthenticationError)
    assert g.status.auth_failed
    assert g.status.misconfigured == "DIRECTUS_TOKEN"
    assert g.refusal() is not refusal  # each caller gets its own error
    g.answered()
    assert g.refusal() is None
    assert not g.status.auth_failed


def test_a_failure_after_directus_answered_is_an_outage_not_a_refusal():
    g, _, _ = gate()
    g.answered()
    g.failed(DirectusAuthenticationError("token expired", status=401))
    assert g.failing
    assert g.refusal() is None
    assert g.status.auth_failed


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
