"""Counters since the repository was built: one observer of the events its pieces emit."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, fields
from typing import Any, ParamSpec, TypeVar

from .._events import ContentChanged, Event, LookupFailed, MirrorWritten, OriginFetched, Served

__all__ = ["HitReporter", "Stats"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(slots=True)
class Stats:
    """Counters since the repository was built. ``stats()`` hands out copies.

    A hook: calling it with an event counts the event. Fresh cache hits are counted by the hit
    path itself (``hits``), not sent as events.
    """

    hits: int = 0
    misses: int = 0
    """Calls that waited on a Directus fetch (whatever answered them in the end)."""
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

    def __call__(self, event: Event) -> None:
        if isinstance(event, Served):
            self._served(event)
        elif isinstance(event, LookupFailed):
            if event.outcome == "not_found" and event.source == "cache":
                self.not_found_hits += 1
            elif event.source == "directus":
                self.misses += 1
        elif isinstance(event, OriginFetched):
            self._fetched(event)
        elif isinstance(event, MirrorWritten):
            if event.outcome == "error":
                self.mirror_write_errors += 1
            elif event.action == "withdraw":
                self.withdrawals += 1
            elif event.outcome != "unchanged":
                self.mirror_writes += 1
        elif isinstance(event, ContentChanged) and event.old_hash is not None:
            self.drifts += 1

    def _served(self, event: Served) -> None:
        rule = event.rule
        if rule == "hit":
            self.hits += 1
            return
        if rule in ("origin", "hedge", "first_failure", "after_error"):
            self.misses += 1
        if rule == "stale" or (rule == "after_error" and event.source == "cache"):
            self.stale_serves += 1
        elif rule == "hedge":
            self.hedged_serves += 1
        elif rule in ("first_failure", "outage"):
            self.failovers += 1
        elif rule == "after_error":
            self.mirror_fallbacks += 1

    def _fetched(self, event: OriginFetched) -> None:
        self.origin_requests += 1
        if event.trigger == "refresh":
            self.background_refreshes += 1
        if event.probe:
            self.probes += 1
        if event.outcome == "error":
            self.origin_errors[event.error_kind or "error"] += 1
        elif event.outcome == "ok":
            self.origin_latency_total += event.duration
            self.origin_latency_max = max(self.origin_latency_max, event.duration)
            self.origin_latency_last = event.duration

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


class HitReporter:
    """Reports the hits a repository made to a hook that counts them itself (OpenTelemetry),
    after each call: ``count(n)`` once per call that hit, nothing on the hit path. Exact
    whenever no call is under way (a miss that waits lets the others report theirs)."""

    __slots__ = ("_count", "_reported", "_stats")

    def __init__(self, stats: Stats, count: Callable[[int], None]) -> None:
        self._stats = stats
        self._count = count
        self._reported = 0

    def wrap(
        self, read: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(read)
        async def reporting(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await read(*args, **kwargs)
            finally:
                hits = self._stats.hits
                if hits != self._reported:
                    self._count(hits - self._reported)
                    self._reported = hits

        return reporting
