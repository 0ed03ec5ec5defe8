"""Whether Directus is failing, and who may ask it while it is: the outage gate.

Health follows the data-source status model: ``initializing`` until Directus first answers,
``valid`` while it answers, ``interrupted`` from the first failed attempt until the next
answer. Each transition is logged once (WARNING when an outage starts, ERROR for a rejected
token, which needs a person; INFO when it ends) and emitted once as a ``StateChanged`` event.

While interrupted, callers are served from cache and mirror and Directus is asked only by one
*probe* at a time, spaced by exponential backoff with jitter, so many callers over many keys
cost one request per probe interval. A probe slot is taken and released in one place: the
:class:`ProbeSlot` context manager. One gate serves every kind of a stack (one Directus).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from types import TracebackType

from .._defaults import DEFAULT_PROBE_INITIAL, DEFAULT_PROBE_MAX
from .._events import Event, OriginState, OriginStatus, StateChanged
from .._exceptions import DirectusAuthenticationError
from ..sources.retry import backoff

__all__ = ["OriginHealth", "OutageGate", "ProbeSchedule", "ProbeSlot"]

logger = logging.getLogger("storybench_prompts.outage")


class OriginHealth:
    """The origin's status, moved by answers and failures; logs and emits each transition."""

    def __init__(
        self,
        name: str,
        wall_clock: Callable[[], float] = time.time,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self._name = name
        self._wall = wall_clock
        self._emit = emit
        self.status = OriginStatus(state=OriginState.INITIALIZING, since=wall_clock())
        self.last_exception: BaseException | None = None
        """The latest failure itself (the cause given to callers refused during an outage)."""

    def _moved(self, previous: OriginStatus) -> None:
        if self._emit is not None and previous.state is not self.status.state:
            self._emit(
                StateChanged(
                    old=previous.state,
                    new=self.status.state,
                    error_kind=self.status.last_error_kind,
                    status=self.status,
                )
            )

    def succeeded(self) -> None:
        now = self._wall()
        previous = self.status
        if previous.state is OriginState.INTERRUPTED:
            logger.info(
                "%s is answering again after %.1f s of outage", self._name, now - previous.since
            )
        if previous.state is not OriginState.VALID:
            self.status = OriginStatus(state=OriginState.VALID, since=now, last_success_at=now)
        else:
            self.status = OriginStatus(
                state=OriginState.VALID,
                since=previous.since,
                last_success_at=now,
                last_error=previous.last_error,
                last_error_kind=previous.last_error_kind,
            )
        self._moved(previous)

    def failed(self, exc: BaseException) -> None:
        now = self._wall()
        previous = self.status
        self.last_exception = exc
        auth = isinstance(exc, DirectusAuthenticationError)
        if previous.state is not OriginState.INTERRUPTED or (auth and not previous.auth_failed):
            if auth:
                logger.error(
                    "%s rejects our token; serving from cache and mirror until it is fixed: %s",
                    self._name,
                    exc,
                )
            else:
                logger.warning("%s unavailable, serving from cache and mirror: %s", self._name, exc)
        since = previous.since if previous.state is OriginState.INTERRUPTED else now
        self.status = OriginStatus(
            state=OriginState.INTERRUPTED,
            since=since,
            last_error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            last_error_kind=type(exc).__name__,
            last_success_at=previous.last_success_at,
            auth_failed=auth,
        )
        self._moved(previous)


class ProbeSchedule:
    """When the next recovery probe may start while the origin is failing.

    One probe at a time; after each failure the next is due after a wait that doubles from
    ``initial`` up to ``maximum``, jittered in its upper half (so processes that failed
    together do not probe together). ``clock`` is monotonic seconds, the cache's clock.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        initial: float = DEFAULT_PROBE_INITIAL,
        maximum: float = DEFAULT_PROBE_MAX,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._clock = clock
        self._initial = initial
        self._maximum = maximum
        self._rand = rand
        self._failures = 0
        self._due = 0.0
        self.in_flight = False

    def failed(self) -> None:
        """An attempt failed: the next probe waits longer."""
        wait = backoff(
            self._failures,
            initial=self._initial,
            maximum=self._maximum,
            rand=self._rand,
            jitter=0.5,
        )
        self._failures += 1
        self._due = self._clock() + wait

    def succeeded(self) -> None:
        self._failures = 0
        self._due = 0.0

    def take(self) -> bool:
        """True (and the probe slot is taken) when a probe may start now."""
        if self.in_flight or self._clock() < self._due:
            return False
        self.in_flight = True
        return True

    def release(self) -> None:
        self.in_flight = False

    @property
    def due_at(self) -> float:
        return self._due


class ProbeSlot:
    """The one probe allowed now; leaving the ``with`` block releases it."""

    __slots__ = ("_schedule",)

    def __init__(self, schedule: ProbeSchedule) -> None:
        self._schedule = schedule

    def __enter__(self) -> ProbeSlot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._schedule.release()


class OutageGate:
    """Directus's health and the probe schedule, behind the questions the cache asks."""

    def __init__(self, health: OriginHealth, schedule: ProbeSchedule) -> None:
        self.health = health
        self.schedule = schedule

    @property
    def status(self) -> OriginStatus:
        return self.health.status

    @property
    def failing(self) -> bool:
        return self.health.status.state is OriginState.INTERRUPTED

    @property
    def last_exception(self) -> BaseException | None:
        return self.health.last_exception

    def probe(self) -> ProbeSlot | None:
        """The probe slot when a probe may start now (release it with ``with``), else None."""
        return ProbeSlot(self.schedule) if self.schedule.take() else None

    def failed(self, exc: BaseException) -> None:
        self.health.failed(exc)
        self.schedule.failed()

    def answered(self) -> None:
        self.health.succeeded()
        self.schedule.succeeded()

    def next_probe_in(self, now: float) -> float:
        return max(0.0, self.schedule.due_at - now)
