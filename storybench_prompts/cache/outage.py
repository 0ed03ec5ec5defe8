"""Counters and origin health for the caching repository.

Health follows the data-source status model: ``initializing`` until the origin first answers,
``valid`` while it answers, ``interrupted`` from the first failed attempt until the next answer.
An outage is logged once when it starts (WARNING; ERROR for authentication failures, which need
a person) and once when it ends (INFO), not once per call.

While interrupted, callers are served from cache and mirror and the origin is asked only by
one *probe* at a time, spaced by exponential backoff with jitter (:class:`ProbeSchedule`), so
many callers over many keys cause one request per probe interval, not one each.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum

from .._defaults import DEFAULT_PROBE_INITIAL, DEFAULT_PROBE_MAX
from .._exceptions import DirectusAuthenticationError

__all__ = [
    "DEFAULT_PROBE_INITIAL",
    "DEFAULT_PROBE_MAX",
    "OriginHealth",
    "OriginState",
    "OriginStatus",
    "ProbeSchedule",
    "Stats",
]


logger = logging.getLogger(__name__)


class OriginState(StrEnum):
    INITIALIZING = "initializing"
    VALID = "valid"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class OriginStatus:
    state: OriginState
    since: float
    """Wall-clock seconds when the current state began."""
    last_error: str | None = None
    last_error_kind: str | None = None
    last_success_at: float | None = None
    auth_failed: bool = False


@dataclass(slots=True)
class Stats:
    """Counters since the repository was built. ``stats()`` hands out copies."""

    hits: int = 0
    misses: int = 0
    stale_serves: int = 0
    hedged_serves: int = 0
    mirror_fallbacks: int = 0
    not_found_hits: int = 0
    background_refreshes: int = 0
    failovers: int = 0
    """Calls answered from cache or mirror because Directus was failing."""
    probes: int = 0
    mirror_writes: int = 0
    mirror_write_errors: int = 0
    withdrawals: int = 0
    drifts: int = 0
    """Versions whose content changed in Directus under the same version number."""
    origin_requests: int = 0
    origin_errors: Counter[str] = field(default_factory=Counter)
    origin_latency_total: float = 0.0
    origin_latency_max: float = 0.0
    origin_latency_last: float | None = None

    @property
    def origin_latency_mean(self) -> float | None:
        ok = self.origin_requests - sum(self.origin_errors.values())
        return self.origin_latency_total / ok if ok > 0 else None

    def copy(self) -> Stats:
        clone = Stats(**{f.name: getattr(self, f.name) for f in fields(self)})
        clone.origin_errors = Counter(self.origin_errors)
        return clone

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["origin_errors"] = dict(self.origin_errors)
        out["origin_latency_mean"] = self.origin_latency_mean
        return out


class OriginHealth:
    def __init__(self, name: str, wall_clock: Callable[[], float] = time.time) -> None:
        self._name = name
        self._wall = wall_clock
        self.status = OriginStatus(state=OriginState.INITIALIZING, since=wall_clock())
        self.last_exception: BaseException | None = None
        """The latest failure itself (the cause given to callers refused during an outage)."""

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


class ProbeSchedule:
    """When the next recovery probe may start while the origin is failing.

    One probe at a time; after each failure the next is due after a wait that doubles from
    ``initial`` up to ``maximum``, with full jitter in its upper half (so processes that failed
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
        ceiling = min(self._maximum, self._initial * (2**self._failures))
        self._failures += 1
        self._due = self._clock() + ceiling * (0.5 + 0.5 * self._rand())

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
