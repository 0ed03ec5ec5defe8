"""Whether Directus is failing, what counts as failing, and who may ask it while it is.

Health follows the data-source status model: ``initializing`` until Directus first answers,
``valid`` while it answers, ``interrupted`` from the first failure until the next answer.
Each transition is logged once (WARNING when an outage starts, ERROR for a failure a person
must fix; INFO when it ends) and emitted once as a ``StateChanged`` event.

What counts (:func:`failure_class`): refused and reset connections, timeouts, 5xx and 429 say
Directus is failing. Invalid content, a 403 on one collection, a 400 are facts about one
answer: they are noted, never an outage. A local wait for a pooled connection or a cancelled
fetch says nothing about Directus. A rejected token and an answer that cannot be Directus's
(:class:`ConfigurationError`) need a person: before Directus has ever answered this process,
no copy is served around them (:meth:`OutageGate.refusal`); after it has, they are served
around like an outage (an expired token keeps a benchmark running on the copies it had).

While interrupted, callers are served from cache and mirror and Directus is asked only by one
*probe* at a time: a new fetch or a retry goes only when the probe slot is free and due
(:class:`ProbeSlot`, taken and released in one place). The schedule backs off once when an
outage starts and once per failed probe, never per attempt, so recovery is noticed within one
probe interval. Before the first answer, one request goes first: others wait for it (at most
``fallback_after``), so a Directus that is down from the start costs one request, not one per
key. One gate serves every kind of a stack (one Directus).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal

import anyio

from .._defaults import DEFAULT_PROBE_INITIAL, DEFAULT_PROBE_MAX
from .._events import Event, OriginState, OriginStatus, StateChanged
from .._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusForbiddenError,
    DirectusInvalidResponseError,
    DirectusPoolTimeoutError,
    DirectusRequestError,
    FetchInterruptedError,
    InvalidPromptSetError,
    SourceUnavailableError,
)
from .._logs import fields, get_logger
from ..sources.retry import backoff
from .timing import Sleep, first_of

__all__ = [
    "FailureClass",
    "OriginHealth",
    "OutageGate",
    "ProbeSchedule",
    "ProbeSlot",
    "failure_class",
]

logger = get_logger("storybench_prompts.outage", source="directus")

FailureClass = Literal["outage", "needs_a_person", "answer", "local"]


def failure_class(exc: BaseException) -> FailureClass:
    """What a failed fetch says about Directus (see the module docs)."""
    if isinstance(exc, DirectusPoolTimeoutError | FetchInterruptedError):
        return "local"
    if isinstance(exc, ConfigurationError | DirectusAuthenticationError):
        return "needs_a_person"
    if isinstance(
        exc,
        InvalidPromptSetError
        | DirectusForbiddenError
        | DirectusRequestError
        | DirectusInvalidResponseError,
    ):
        return "answer"
    return "outage"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class OriginHealth:
    """The origin's status, moved by answers and failures; logs and emits each transition."""

    def __init__(
        self,
        name: str,
        wall_clock: Callable[[], float] = time.time,
        emit: Callable[[Event], None] | None = None,
        *,
        meanwhile: str = "serving from cache and mirror",
    ) -> None:
        self._name = name
        self._meanwhile = meanwhile
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
                "%s is answering again after %.1f s of outage",
                self._name,
                now - previous.since,
                extra=fields(source=self._name),
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

    def failed(self, exc: BaseException, *, misconfigured: str | None = None) -> None:
        """Directus cannot be used now: interrupted until it answers again."""
        now = self._wall()
        previous = self.status
        self.last_exception = exc
        auth = isinstance(exc, DirectusAuthenticationError)
        # A rejected token stays flagged until Directus answers, whatever fails next.
        auth_failed = auth or previous.auth_failed
        if previous.state is not OriginState.INTERRUPTED or (
            (auth and not previous.auth_failed) or (misconfigured and not previous.misconfigured)
        ):
            if auth or misconfigured:
                logger.error(
                    "%s cannot be used until a setting is fixed%s: %s",
                    self._name,
                    f" ({misconfigured})" if misconfigured else "",
                    exc,
                    extra=fields(source=self._name, error=exc),
                )
            else:
                logger.warning(
                    "%s unavailable, %s: %s",
                    self._name,
                    self._meanwhile,
                    exc,
                    extra=fields(source=self._name, error=exc),
                )
        since = previous.since if previous.state is OriginState.INTERRUPTED else now
        self.status = OriginStatus(
            state=OriginState.INTERRUPTED,
            since=since,
            last_error=_first_line(exc),
            last_error_kind=type(exc).__name__,
            last_success_at=previous.last_success_at,
            auth_failed=auth_failed,
            misconfigured=misconfigured or previous.misconfigured,
        )
        self._moved(previous)

    def noted(self, exc: BaseException) -> None:
        """A failure that says nothing about Directus's health: remembered, state unchanged."""
        previous = self.status
        self.status = OriginStatus(
            state=previous.state,
            since=previous.since,
            last_error=_first_line(exc),
            last_error_kind=type(exc).__name__,
            last_success_at=previous.last_success_at,
            auth_failed=previous.auth_failed,
            misconfigured=previous.misconfigured,
        )


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
        """An outage began, or a probe failed: the next probe waits longer."""
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
        self._first_contact: anyio.Event | None = None
        self._last_seen: BaseException | None = None
        self._refused: BaseException | None = None

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

    def failed(self, exc: BaseException, *, probe: bool = False) -> bool:
        """A fetch or an attempt failed with ``exc`` (``probe``: it was a recovery probe).
        True when this failure is the one that started an outage.

        The same exception reported twice (by the retry loop, then by the fetch) counts once.
        """
        if exc is self._last_seen:
            return False
        self._last_seen = exc
        cls = failure_class(exc)
        if cls == "local":
            return False
        if cls == "answer":
            self.health.noted(exc)
            return False
        status = self.status
        misconfigured = None
        if cls == "needs_a_person" and status.last_success_at is None:
            misconfigured = getattr(exc, "setting", None) or "DIRECTUS_URL"
            self._refused = exc
        starting = not self.failing
        self.health.failed(exc, misconfigured=misconfigured)
        if starting or probe:
            self.schedule.failed()
        self._contact_ended()
        return starting

    def claim(self) -> ProbeSlot | None:
        """The probe slot now, due or not (None when a probe is under way): for the fetch whose
        failure started the outage, whose own retries are then the only requests."""
        if self.schedule.in_flight:
            return None
        self.schedule.in_flight = True
        return ProbeSlot(self.schedule)

    def answered(self) -> None:
        self._refused = None
        self.health.succeeded()
        self.schedule.succeeded()
        self._contact_ended()

    def refusal(self) -> BaseException | None:
        """The error to raise instead of serving a copy (a fresh one per caller): set while
        Directus has never answered this process and refused it for a reason a person must fix,
        whatever failed since."""
        refused = self._refused
        if refused is None:
            return None
        clone = copy.copy(refused)
        clone.__traceback__ = None
        clone.__cause__ = clone.__context__ = None
        return clone

    def next_probe_in(self, now: float) -> float:
        return max(0.0, self.schedule.due_at - now)

    def outage_error(self, now: float) -> SourceUnavailableError:
        """A fresh error for a fetch that was not sent because Directus is failing."""
        status = self.status
        error = SourceUnavailableError(
            f"Directus has been failing ({status.last_error_kind}: {status.last_error}); "
            f"it is asked again in {self.next_probe_in(now):.1f} s"
        )
        error.__cause__ = self.last_exception
        return error

    # -- the first contact -----------------------------------------------------------------

    async def first_contact(self, timeout: float, sleep: Sleep) -> bool:  # noqa: ASYNC109 (the injected sleep times it)
        """Before Directus has ever answered: True for the one fetch that goes first; the
        others wait until it ends (at most ``timeout``) and get False."""
        if self.status.state is not OriginState.INITIALIZING:
            return False
        if self._first_contact is None:
            self._first_contact = anyio.Event()
            return True
        await first_of(self._first_contact, timeout=timeout, sleep=sleep)
        return False

    def contact_over(self) -> None:
        """The first fetch ended, however it ended."""
        self._contact_ended()

    def _contact_ended(self) -> None:
        if self._first_contact is not None:
            self._first_contact.set()
