"""The read path past the hit path: what a lookup does when the entry is not fresh.

The engine serves a fresh entry itself; everything else comes here. :func:`decide` picks the
action, and this driver does the I/O each action needs: raise a remembered "not found", serve
a current or stale entry, serve a copy while Directus is known to be failing (a probe only
when one is due), or wait on the shared fetch, hedging with the mirror after
``fallback_after`` and failing over at Directus's first failed attempt. Every answer but a
hit is emitted as a ``Served`` or ``LookupFailed`` event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

from .._events import Event, LookupFailed, Rule, Served
from .._exceptions import PromptSetNotFoundError, StorybenchPromptsError
from ..content.kinds import ContentKind
from ..content.models import VersionedContent
from .changes import ChangeTracker
from .decision import Action, decide
from .entries import Entry, EntryTable, Key, fresh_error, version_of
from .fallback import Copies
from .mirror_io import MirrorIO
from .origin import OriginFetches
from .outage import OutageGate
from .policy import CachePolicy
from .singleflight import Flight
from .stats import Stats
from .timing import first_of

__all__ = ["ReadPath"]

C = TypeVar("C", bound=VersionedContent)

_HOW: dict[Rule, Literal["fresh", "stale", "hedged", "failover"]] = {
    "hit": "fresh",
    "origin": "fresh",
    "stale": "stale",
    "hedge": "hedged",
    "first_failure": "failover",
    "outage": "failover",
    "after_error": "failover",
}


class ReadPath(Generic[C]):
    def __init__(
        self,
        *,
        kind: ContentKind[C],
        policy: CachePolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        entries: EntryTable[C],
        changes: ChangeTracker,
        gate: OutageGate,
        origin: OriginFetches[C],
        copies: Copies[C],
        mirror: MirrorIO[C] | None,
        stats: Stats,
        emit: Callable[[Event], None],
    ) -> None:
        self._kind = kind
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._entries = entries
        self._cache = entries.entries
        self._changes = changes
        self._gate = gate
        self._origin = origin
        self._copies = copies
        self._mirror_io = mirror
        self._emit = emit
        self._stats = stats
        self.revalidating: Callable[[Key], bool] = lambda _key: False
        """Whether a revalidation round has this key (``pieces.assemble`` points it at the
        rounds)."""

    async def lookup(self, key: Key, entry: Entry[C] | None) -> C:
        started = self._clock()
        remembered = self._entries.remembered_not_found(key)
        refused = self._entries.remembered_refused(key)
        held = entry is not None  # what is pushed or revalidated matters only for an entry
        action = decide(
            entry,
            started,
            not_found=remembered is not None,
            refused=refused is not None,
            pushed=held and self._changes.pushed(),
            failing=self._gate.failing,
            revalidating=held and self.revalidating(key),
        )
        if action is Action.NOT_FOUND and remembered is not None:
            self._failed(key, "not_found", remembered, "cache", started)
            raise remembered
        if action is Action.REFUSED and refused is not None:
            try:
                copy = await self._copies.after_error(key, refused)
            except StorybenchPromptsError as exc:
                self._failed(key, "error", exc, "cache", started)
                raise
            return self._served(key, copy, "after_error", started)
        if entry is not None and action is Action.CURRENT:
            self._stats.hits += 1  # realtime says it is current: a hit like any other
            return entry.served
        if entry is not None and action is Action.REVALIDATING:
            # The round refetching it is under way: no reader waits for it.
            failing = self._gate.status.last_error_kind if self._gate.failing else None
            return self._served(key, entry.stale_copy(origin_error=failing), "stale", started)
        if entry is not None and action is Action.STALE:
            self._origin.refresh_in_background(key)
            failing = self._gate.status.last_error_kind if self._gate.failing else None
            return self._served(key, entry.stale_copy(origin_error=failing), "stale", started)
        if action is Action.OUTAGE:
            answer = await self._during_outage(key, started)
            if not isinstance(answer, Flight):
                return answer
            flight = answer
        else:
            flight = self._origin.join(key)
        try:
            return await self._await_fetch(key, flight, started)
        except PromptSetNotFoundError as exc:
            self._failed(key, "not_found", exc, "directus", started)
            raise
        except StorybenchPromptsError as exc:
            self._failed(key, "error", exc, "directus", started)
            raise

    def _served(self, key: Key, content: C, rule: Rule, started: float) -> C:
        provenance = content.provenance
        self._emit(
            Served(
                self._kind.name,
                version_of(key),
                content.version,
                provenance.source if provenance is not None else "directus",
                _HOW[rule],
                rule,
                self._clock() - started,
            )
        )
        return content

    def _failed(
        self,
        key: Key,
        outcome: Literal["not_found", "error"],
        exc: BaseException,
        source: Literal["cache", "directus"],
        started: float,
    ) -> None:
        version = version_of(key)
        duration = self._clock() - started
        self._emit(
            LookupFailed(self._kind.name, version, outcome, type(exc).__name__, source, duration)
        )

    async def _during_outage(self, key: Key, started: float) -> C | Flight[C]:
        """Directus is known to be failing: a copy at once, and a probe only when one is due
        (the flight to wait for when nobody has a copy)."""
        misses: list[BaseException] = []
        copy = await self._copies.failover(key, self._gate.status.last_error_kind, misses)
        if copy is not None:
            if not self._origin.in_flight(key) and (slot := self._gate.probe()) is not None:
                self._origin.join(key, trigger="refresh", slot=slot)
            return self._served(key, copy, "outage", started)
        if self._origin.in_flight(key):
            return self._origin.join(key)
        # Nobody has a copy: only a due probe may ask Directus, so many missing keys cannot
        # storm a server known to be down.
        slot = self._gate.probe()
        if slot is None:
            refusal = self._copies.known_outage_error(key, misses)
            self._failed(key, "error", refusal, "cache", started)
            raise refusal
        return self._origin.join(key, slot=slot)

    async def _await_fetch(self, key: Key, flight: Flight[C], started: float) -> C:
        if not flight.done.is_set():
            if self._mirror_io is not None or key in self._cache:
                # A fetch another caller already gave up waiting for (a frozen Directus) is
                # not waited for again: the mirror is asked at once.
                first = await first_of(
                    flight.done,
                    flight.attempt_failed,
                    timeout=0.0 if flight.overdue else self._policy.fallback_after,
                    sleep=self._sleep,
                )
                if first is None:
                    flight.overdue = True
                if first is flight.attempt_failed and not flight.done.is_set():
                    # Directus refused the first attempt: serve a copy now; the flight retries.
                    error = flight.attempt_error
                    kind = type(error).__name__ if error is not None else None
                    copy = await self._copies.failover(key, kind)
                    if copy is not None:
                        return self._served(key, copy, "first_failure", started)
                elif first is None and self._mirror_io is not None:
                    hedged = await self._copies.hedge(key, flight)
                    if hedged is not None:
                        return self._served(key, hedged, "hedge", started)
            await flight.done.wait()
        if flight.error is None:
            entry = self._entries.get(key)
            if entry is not None and entry.invalidated:
                # A change touched it while it was fetched: this answer may predate it.
                return self._served(key, entry.stale_copy(), "stale", started)
            return self._served(key, flight.result(), "origin", started)
        if isinstance(flight.error, PromptSetNotFoundError):
            raise fresh_error(flight.error)
        copy = await self._copies.after_error(key, flight.error)
        return self._served(key, copy, "after_error", started)
