"""Fetches from Directus for one kind, one key at a time.

One shared fetch per key (single-flight) runs in the stack's task group, so a caller that
gives up leaves it running for the others. Each failed attempt is reported to its flight (the
read path serves a copy at the first one) and to the outage gate; what an answer does to the
cache is ``answers``. A change that touches what a fetch brought, arriving while it ran,
makes it fetch again once it has landed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Generic, Literal, TypeVar

from .._events import Event, OriginAttempt, OriginFetched, Via
from .._exceptions import PromptSetNotFoundError, StorybenchPromptsError
from ..content.kinds import ContentKind
from ..content.models import Provenance, VersionedContent
from ..mirrors.base import PromptMirror
from ..ops.sync import SyncResult, sync_versions
from ..sources.attempts import observing_attempts
from ..sources.base import PromptRepository
from .answers import Answers
from .changes import ChangeTracker
from .entries import EntryTable, Key, version_of
from .outage import OutageGate, ProbeSlot, failure_class
from .policy import CachePolicy
from .singleflight import Flight, SingleFlight
from .stack import Stack
from .timing import Sleep

__all__ = ["OriginFetches"]

C = TypeVar("C", bound=VersionedContent)

Trigger = Literal["caller", "refresh"]


class OriginFetches(Generic[C]):
    def __init__(
        self,
        origin: PromptRepository[C],
        *,
        kind: ContentKind[C],
        policy: CachePolicy,
        clock: Callable[[], float],
        entries: EntryTable[C],
        answers: Answers[C],
        changes: ChangeTracker,
        stack: Stack,
        emit: Callable[[Event], None],
        sleep: Sleep,
    ) -> None:
        self._origin = origin
        self._sleep = sleep
        self._kind = kind
        self._policy = policy
        self._clock = clock
        self._entries = entries
        self._answers = answers
        self._changes = changes
        self._stack = stack
        self._gate: OutageGate = stack.gate
        self._emit = emit
        self._flights: SingleFlight[Key, C] = SingleFlight()
        self.raced: Callable[[list[Key]], None] = self._refresh_each
        """Told the keys of a fetch that a change raced (``pieces.assemble`` points it at the
        next change round)."""

    def _refresh_each(self, keys: list[Key]) -> None:
        for key in dict.fromkeys(keys):
            self.refresh_in_background(key, via="realtime")

    def in_flight(self, key: Key) -> bool:
        return self._flights.in_flight(key)

    def join(
        self,
        key: Key,
        *,
        trigger: Trigger = "caller",
        slot: ProbeSlot | None = None,
        via: Via = "refresh",
    ) -> Flight[C]:
        """The shared fetch of ``key``: the running one, or a new one (a probe: ``slot``)."""
        if slot is not None and self._flights.in_flight(key):
            with slot:  # someone else is already asking; give the slot back
                pass
        return self._flights.join(
            key, lambda f: self._fetch(f, key, trigger, slot, via), self._stack.task_group
        )

    def refresh_in_background(self, key: Key, *, via: Via = "refresh") -> None:
        """Fetch ``key`` again for nobody in particular; during an outage only as a due probe,
        so stale entries cannot storm a server known to be down."""
        if self._flights.in_flight(key):
            return
        slot = None
        if self._gate.failing:
            slot = self._gate.probe()
            if slot is None:
                return
        self.join(key, trigger="refresh", slot=slot, via=via)

    # -- one fetch -------------------------------------------------------------------------

    async def _fetch(
        self, flight: Flight[C], key: Key, trigger: Trigger, slot: ProbeSlot | None, via: Via
    ) -> C:
        gate = self._gate
        first = False
        if slot is None:
            first = await gate.first_contact(self._policy.fallback_after, self._sleep)
            if not first and gate.failing:
                # Directus is known to be failing: this fetch goes only as the due probe.
                slot = gate.probe()
                if slot is None:
                    raise gate.outage_error(self._clock())
        try:
            return await self._ask(flight, key, trigger, slot, via)
        finally:
            if first:
                gate.contact_over()

    async def _ask(
        self, flight: Flight[C], key: Key, trigger: Trigger, slot: ProbeSlot | None, via: Via
    ) -> C:
        generation = self._changes.generation
        started = self._clock()
        started_wall = time.time()
        version = version_of(key)
        attempts = [0]
        probing = [slot is not None]  # whether the attempt under way is a probe
        owned: list[ProbeSlot | None] = [None]

        def guard() -> contextlib.AbstractContextManager[object] | None:
            # Once Directus is known to be failing, only the fetch that found the outage retries
            # at its own pace; any other retry goes only as the due probe, or not at all.
            if owned[0] is not None or not self._gate.failing:
                probing[0] = False
                return contextlib.nullcontext()
            taken = self._gate.probe()
            probing[0] = taken is not None
            return taken

        def on_failed(exc: BaseException) -> None:
            flight.report_failed_attempt(exc)
            started_outage = self._gate.failed(exc, probe=probing[0])
            if started_outage and slot is None and owned[0] is None:
                owned[0] = self._gate.claim()

        def on_attempt(exc: BaseException | None, seconds: float) -> None:
            attempts[0] += 1
            self._emit(
                OriginAttempt(
                    self._kind.name,
                    version,
                    "ok" if exc is None else "error",
                    None if exc is None else type(exc).__name__,
                    getattr(exc, "status", None) if exc is not None else 200,
                    seconds,
                )
            )

        def fetched(outcome: Literal["ok", "not_found", "error"], error: str | None) -> None:
            self._emit(
                OriginFetched(
                    self._kind.name,
                    version,
                    trigger,
                    slot is not None,
                    outcome,
                    max(1, attempts[0]),
                    error,
                    started_wall,
                    self._clock() - started,
                )
            )

        try:
            # A probe is one attempt: many callers during an outage cost one request each time.
            with (
                slot or contextlib.nullcontext(),
                observing_attempts(
                    on_failed,
                    max_attempts=1 if slot is not None else None,
                    on_attempt=on_attempt,
                    guard=guard,
                ),
            ):
                number = version_of(key)
                if number is None:
                    content = await self._origin.latest()
                else:
                    content = await self._origin.get(number)
        except PromptSetNotFoundError as exc:
            self._gate.answered()
            if self._changes.raced_absent(generation, key):
                self.raced([key])  # published meanwhile, maybe: asked again, not remembered
            else:
                self._answers.not_found(key, exc)
            fetched("not_found", None)
            raise
        except StorybenchPromptsError as exc:  # unavailable, invalid, misconfigured
            self._gate.failed(exc, probe=probing[0])
            if failure_class(exc) == "answer":
                self._entries.remember_refused(key, exc)  # about this version: not re-asked
            fetched("error", type(exc).__name__)
            raise
        finally:
            if owned[0] is not None:
                with owned[0]:
                    pass  # released: the scheduled probes take over
        if content.provenance is None:
            content = content.with_provenance(
                Provenance(source="directus", origin="directus", fetched_at_epoch=time.time())
            )
        fetched("ok", None)
        self._gate.answered()
        self._answers.answered(key, content, via, started)
        if self._changes.raced(generation, key, content):
            self._refetch_after(flight, key, content.version)
        return content

    def _refetch_after(self, flight: Flight[C], key: Key, version: int) -> None:
        """A change arrived while this fetch ran: its answer may be old, so the next
        revalidation round fetches it again once it has landed (served stale meanwhile)."""
        for stored in (key, version):
            entry = self._entries.get(stored)
            if entry is not None:
                entry.invalidate()
        task_group = self._stack.open_task_group
        if task_group is None:
            return

        async def again() -> None:
            await flight.done.wait()
            self.raced([key, version])

        task_group.start_soon(again)

    async def warm(
        self, versions: Iterable[int] | None, mirror: PromptMirror[C]
    ) -> list[SyncResult]:
        """Sync ``versions`` (default: every published one) into ``mirror`` and the cache."""
        return await sync_versions(
            self._origin,
            mirror,
            versions,
            concurrency=self._policy.warm_concurrency,
            activate_if_none=True,
            on_result=self._answers.synced,
        )
