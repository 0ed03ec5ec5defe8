"""Refetching what Directus's changes touched: in rounds, batched, never blocking a reader.

A change event (``changed``, which ``changes.ChangeTracker`` decides about) marks the entries it touches (``content.tracking``) and adds their keys to the
next round; while a key waits for its round, or is being refetched, its entry is served at once
marked stale. Events that arrive while a round is planned or running join the next one; a round
starts ``debounce`` after the first event of a quiet spell and at least ``spacing`` after the
previous round started, so a burst of edits costs a few rounds. A round reads every version it
holds in one batched request per ``DEFAULT_BATCH_SIZE`` versions; "latest" is asked for on its
own only when a version row changed (a publication can move it), and otherwise follows its
version. After the realtime channel (re)connects, each process waits a random part of
``spread`` and then checks, in one round, the entries fetched before the subscription held:
what changed while nobody listened is not replayed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from .._defaults import (
    DEFAULT_RECONNECT_SPREAD,
    DEFAULT_REVALIDATION_DEBOUNCE,
    DEFAULT_REVALIDATION_SPACING,
)
from ..content.models import VersionedContent
from .changes import ChangeTracker
from .entries import LATEST, EntryTable, Key
from .stack import Stack
from .timing import Sleep

__all__ = ["ChangeRounds"]

C = TypeVar("C", bound=VersionedContent)

Refetch = Callable[[set[int], bool, bool], Awaitable[set[Key]]]
"""``refetch(versions, latest_on_its_own, latest_follows_its_version)`` -> keys to try again."""


class ChangeRounds(Generic[C]):
    def __init__(
        self,
        *,
        entries: EntryTable[C],
        changes: ChangeTracker,
        refetch: Refetch,
        stack: Stack,
        clock: Callable[[], float],
        sleep: Sleep,
        rand: Callable[[], float] = random.random,
        debounce: float = DEFAULT_REVALIDATION_DEBOUNCE,
        spacing: float = DEFAULT_REVALIDATION_SPACING,
        spread: float = DEFAULT_RECONNECT_SPREAD,
    ) -> None:
        self._entries = entries
        self._changes = changes
        self._refetch = refetch
        self._stack = stack
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._debounce = debounce
        self._spacing = spacing
        self._spread = spread
        self._waiting: set[Key] = set()
        self._in_round: set[Key] = set()
        self._latest_moved = False
        self._planned = False
        self._last_start = float("-inf")
        self._connected_at: float | None = None
        self.rounds = 0

    def is_pending(self, key: Key) -> bool:
        """Whether ``key`` waits for a round or is being refetched (served stale meanwhile)."""
        return key in self._waiting or key in self._in_round

    def changed(
        self, collection: str | None, event: str, rows: list[Mapping[str, Any]] | None
    ) -> None:
        """Directus reports a change (``rows`` None: anything of the kind may have changed):
        mark the entries it touches and refetch them in the next round."""
        change = self._changes.changed(collection, event, rows)
        self._entries.forget_not_found(*change.named)
        if change.latest_moved:
            self._entries.forget_not_found(LATEST)
        if rows is None:
            self._entries.not_found.clear()
        # A refused answer kept no rows to map a change by (the fix may be in any prompt or
        # criterion): every change of the kind lets each refused key be asked once more.
        self._entries.refused.clear()
        touched: list[Key] = []
        for key, entry in self._entries.snapshot():
            if self._changes.hits(change, key, entry.served):
                entry.invalidate()
                touched.append(key)
        self.touched(touched, latest_moved=change.latest_moved)

    def raced(self, keys: Iterable[Key]) -> None:
        """A fetch of these keys may predate a change: fetch them again in the next round
        ("latest" on its own, as what it points at may have moved)."""
        keys = list(keys)
        self.touched(keys, latest_moved=LATEST in keys)

    def touched(self, keys: Iterable[Key], *, latest_moved: bool = False) -> None:
        """These entries changed in Directus (already marked): refetch them in the next round."""
        self._waiting.update(keys)
        self._latest_moved = self._latest_moved or latest_moved
        if self._waiting or self._latest_moved:
            self._plan(self._debounce)

    def connected(self) -> None:
        """The realtime channel is (again) subscribed: check, after a random part of the
        spread, every entry fetched before now."""
        self._connected_at = self._clock()
        if len(self._entries):
            self._plan(self._rand() * self._spread, check=True)

    def _plan(self, delay: float, *, check: bool = False) -> None:
        if self._planned and not check:
            return
        task_group = self._stack.open_task_group
        if task_group is None:
            return
        self._planned = True
        task_group.start_soon(self._after, delay, check, name="revalidation round")

    async def _after(self, delay: float, check: bool) -> None:
        wait = max(delay, self._last_start + self._spacing - self._clock())
        if wait > 0:
            await self._sleep(wait)
        if check:
            self._checked_since_connect()
        self._planned = False
        await self._round()

    def _checked_since_connect(self) -> None:
        connected = self._connected_at
        for key, entry in self._entries.snapshot():
            if connected is None or entry.started is None or entry.started <= connected:
                self._waiting.add(key)
        self._latest_moved = True

    async def _round(self) -> None:
        if not self._waiting and not self._latest_moved:
            return
        self._last_start = self._clock()
        self.rounds += 1
        keys, self._waiting = self._waiting, set()
        latest_moved, self._latest_moved = self._latest_moved, False
        self._in_round = keys | ({LATEST} if latest_moved else set())
        versions = {k for k in keys if isinstance(k, int)}
        latest = self._entries.get(LATEST)
        follows = False
        if LATEST in keys and latest is not None and not latest_moved:
            versions.add(latest.served.version)  # "latest" follows its version's new content
            follows = True
        # "Latest" is asked for on its own only when a version row changed and it is held.
        latest_own = latest_moved and latest is not None
        try:
            again = await self._refetch(versions, latest_own, follows)
        finally:
            self._in_round = set()
        if again:  # Directus failed, or a change raced the round: the next round has them
            self.raced(again)
