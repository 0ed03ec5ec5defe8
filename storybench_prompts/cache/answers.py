"""What an answer from Directus does to one kind's cache.

A version answered is stored (and "latest" with it), clears "not found" and withdrawals for its
version, is checked for drift, and is written to the mirror behind the caller. "Not
published" withdraws the version everywhere; a "latest" lower than versions held withdraws
those. Fetches one at a time (``origin``) and in rounds (``batched``) both end here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, cast

from .._events import Via
from .._exceptions import PromptSetNotFoundError
from ..content.kinds import ContentKind
from ..content.models import VersionedContent
from ..ops.sync import SyncResult
from .drift import DriftLog
from .entries import LATEST, EntryTable, Key, version_of
from .mirror_io import MirrorIO
from .policy import CachePolicy
from .stack import Stack
from .withdrawals import WithdrawalLedger

__all__ = ["Answers"]

C = TypeVar("C", bound=VersionedContent)


class Answers(Generic[C]):
    def __init__(
        self,
        *,
        kind: ContentKind[C],
        policy: CachePolicy,
        clock: Callable[[], float],
        entries: EntryTable[C],
        ledger: WithdrawalLedger[C],
        mirror: MirrorIO[C] | None,
        drift: DriftLog,
        stack: Stack,
    ) -> None:
        self._kind = kind
        self._policy = policy
        self._clock = clock
        self._entries = entries
        self._ledger = ledger
        self._mirror = mirror
        self._drift = drift
        self._stack = stack

    def answered(self, key: Key, content: C, via: Via, started: float | None = None) -> None:
        now = self._clock()
        self._entries.forget_not_found(key, content.version)
        self._entries.forget_refused(key, content.version)
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

    def not_found(self, key: Key, exc: PromptSetNotFoundError) -> None:
        """Directus answered that this is not published: forget it and never serve it."""
        self._entries.remember_not_found(key, exc)
        version = version_of(key)
        if version is None:
            self._entries.pop(LATEST)
            self._ledger.nothing_published()
            self.withdraw_above(-1)
            return
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

    def synced(self, result: SyncResult) -> None:
        """A version a warm-up synced: cached fresh from when it arrived, its hash noted."""
        if result.prompt_set is None:
            return
        content = cast(C, result.prompt_set)
        self.notice_drift(content, "sync")
        self._entries.store(
            result.version, content, fresh_for=self._policy.pinned_ttl, now=self._clock()
        )
        if result.config_hash and self._mirror is not None:
            self._mirror.hashes[result.version] = result.config_hash
