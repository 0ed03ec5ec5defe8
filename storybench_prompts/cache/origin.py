"""Fetches from Directus for one kind, and what each answer does to the cache.

One shared fetch per key (single-flight) runs in the stack's task group, so a caller that
gives up leaves it running for the others. Each failed attempt is reported to its flight (the
read path serves a copy at the first one) and to the outage gate. An answer is stored, clears
"not found" and withdrawals for its version, is checked for drift, and is written to the
mirror in the background; "not found" withdraws the version everywhere; a latest lower than
versions held withdraws those. A change event that arrives during a fetch makes it fetch
again once it has landed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Generic, Literal, TypeVar, cast

from .._events import Event, OriginAttempt, OriginFetched, Via
from .._exceptions import InvalidPromptSetError, PromptSetNotFoundError, StorybenchPromptsError
from ..content.kinds import ContentKind
from ..content.models import Provenance, VersionedContent
from ..mirrors.base import PromptMirror
from ..ops.sync import SyncResult, sync_versions
from ..sources.attempts import observing_attempts
from ..sources.base import PromptRepository
from .changes import ChangeTracker
from .drift import DriftLog
from .entries import LATEST, EntryTable, Key
from .mirror_io import MirrorIO
from .outage import OutageGate, ProbeSlot
from .policy import CachePolicy
from .singleflight import Flight, SingleFlight
from .stack import Stack
from .timing import Sleep
from .withdrawals import WithdrawalLedger

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
        ledger: WithdrawalLedger[C],
        mirror: MirrorIO[C] | None,
        drift: DriftLog,
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
        self._ledger = ledger
        self._mirror = mirror
        self._drift = drift
        self._changes = changes
        self._stack = stack
        self._gate: OutageGate = stack.gate
        self._emit = emit
        self._flights: SingleFlight[Key, C] = SingleFlight()
        self.raced: Callable[[list[Key]], None] = self._refresh_each
        """Told the keys of a fetch that a change raced (the engine points it at the next
        revalidation round)."""

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
        version = None if key == LATEST else int(key)
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
                if key == LATEST:
                    content = await self._origin.latest()
                else:
                    content = await self._origin.get(int(key))
        except PromptSetNotFoundError as exc:
            self._gate.answered()
            self._not_found(key, exc)
            fetched("not_found", None)
            raise
        except StorybenchPromptsError as exc:  # unavailable, invalid, misconfigured
            self._gate.failed(exc, probe=probing[0])
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
        self._answered(key, content, via, started)
        if self._changes.raced(generation, key, content):
            self._refetch_after(flight, key, content.version)
        return content

    def _answered(self, key: Key, content: C, via: Via, started: float | None = None) -> None:
        now = self._clock()
        self._entries.forget_not_found(key, content.version)
        self._ledger.published(content.version)
        self.notice_drift(content, via)
        if key == LATEST:
            check_above = self._ledger.latest_answered(content)
            self._entries.store(
                LATEST, content, fresh_for=self._policy.latest_ttl, now=now, started=started
            )
            if check_above:
                self.withdraw_above(content.version)
        self._entries.store(
            content.version, content, fresh_for=self._policy.pinned_ttl, now=now, started=started
        )
        if self._mirror is not None:
            self._mirror.save_behind(content, self._stack.open_task_group)

    def notice_drift(self, content: C, via: Via) -> None:
        entry = self._entries.get(content.version)
        previous = entry.served.config_hash if entry is not None and entry.from_origin else None
        if previous is None and self._mirror is not None:
            previous = self._mirror.hashes.get(content.version)
        self._drift.notice(content.version, previous, content.config_hash, via)

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

    # -- many at once: a revalidation round -------------------------------------------------

    async def refetch(self, versions: set[int], latest_own: bool, follows: bool) -> set[Key]:
        """Fetch ``versions`` again in one batched read (when the origin has ``get_many``),
        and "latest" on its own (``latest_own``) or from its version's new content
        (``follows``). Returns the keys to try again (Directus failed, or a change raced)."""
        again: set[Key] = set()
        if latest_own:
            self.refresh_in_background(LATEST, via="realtime")
        get_many = getattr(self._origin, "get_many", None)
        if not versions:
            return again
        if get_many is None:  # an origin that reads one version at a time
            for version in versions:
                self.refresh_in_background(version, via="realtime")
            return again
        slot = None
        if self._gate.failing:
            slot = self._gate.probe()
            if slot is None:
                return {*versions, *([LATEST] if follows else [])}
        generation = self._changes.generation
        started, started_wall = self._clock(), time.time()

        def on_failed(exc: BaseException) -> None:
            self._gate.failed(exc, probe=slot is not None)

        def fetched(outcome: Literal["ok", "error"], error: str | None) -> None:
            self._emit(
                OriginFetched(
                    self._kind.name, None, "refresh", slot is not None, outcome, 1, error,
                    started_wall, self._clock() - started,
                )
            )  # fmt: skip

        try:
            with (
                slot or contextlib.nullcontext(),
                observing_attempts(on_failed, max_attempts=1 if slot is not None else None),
            ):
                found: dict[int, C | InvalidPromptSetError] = await get_many(versions)
        except StorybenchPromptsError as exc:
            self._gate.failed(exc, probe=slot is not None)
            fetched("error", type(exc).__name__)
            return {*versions, *([LATEST] if follows else [])}
        fetched("ok", None)
        self._gate.answered()
        for version in sorted(versions):
            got = found.get(version)
            if got is None:
                noun = self._kind.noun
                gone = PromptSetNotFoundError(
                    f"no published {noun} version {version} in Directus", version=version
                )
                self._not_found(version, gone)
            elif isinstance(got, InvalidPromptSetError):
                self._gate.failed(got)  # noted: the entry is served as it was, marked stale
            else:
                self._answered(version, got, "realtime", started)
                if self._changes.raced(generation, version, got):
                    stored = self._entries.get(version)  # a change arrived during the read
                    if stored is not None:
                        stored.invalidate()
                    again.add(version)
        latest = self._entries.get(LATEST)
        if follows and latest is not None:
            same = found.get(latest.served.version)
            if same is not None and not isinstance(same, InvalidPromptSetError):
                now = self._clock()
                self._entries.store(
                    LATEST, same, fresh_for=self._policy.latest_ttl, now=now, started=started
                )
                if self._changes.raced(generation, LATEST, same):
                    stored = self._entries.get(LATEST)
                    if stored is not None:
                        stored.invalidate()
                    again.add(LATEST)
        return again

    async def warm(
        self, versions: Iterable[int] | None, mirror: PromptMirror[C]
    ) -> list[SyncResult]:
        """Sync ``versions`` (default: every published one) into ``mirror`` and the cache."""

        def remember(result: SyncResult) -> None:
            if result.prompt_set is not None:
                content = cast(C, result.prompt_set)
                self.notice_drift(content, "sync")
                # Fresh from when this version arrived, not from when the warm began.
                self._entries.store(
                    result.version, content, fresh_for=self._policy.pinned_ttl, now=self._clock()
                )
                if result.config_hash and self._mirror is not None:
                    self._mirror.hashes[result.version] = result.config_hash

        return await sync_versions(
            self._origin,
            mirror,
            versions,
            concurrency=self._policy.warm_concurrency,
            activate_if_none=True,
            on_result=remember,
        )

    # -- what "not published" means ------------------------------------------------------

    def _not_found(self, key: Key, exc: PromptSetNotFoundError) -> None:
        """Directus answered that this is not published: forget it and never serve it."""
        self._entries.remember_not_found(key, exc)
        if key == LATEST:
            self._entries.pop(LATEST)
            self._ledger.nothing_published()
            self.withdraw_above(-1)
            return
        version = int(key)
        self._ledger.version_gone(version)
        self._entries.pop(version)
        latest = self._entries.get(LATEST)
        if latest is not None and latest.served.version == version:
            self._entries.pop(LATEST)
        if self._mirror is not None:
            self._mirror.withdraw_behind([version], self._stack.open_task_group)

    def withdraw_above(self, latest: int) -> None:
        """Directus says ``latest`` is the highest published version: higher ones are gone."""
        above = [k for k, _ in self._entries.snapshot() if isinstance(k, int) and k > latest]
        self._ledger.remember(above)
        for version in above:
            self._entries.pop(version)
            self._entries.remember_not_found(
                version,
                PromptSetNotFoundError(
                    f"{self._kind.noun} version {version} is no longer published (Directus's "
                    f"latest is {latest})",
                    version=version,
                ),
            )
        if self._mirror is not None:
            self._mirror.withdraw_above_behind(
                latest, self._stack.open_task_group, self._ledger.remember
            )
