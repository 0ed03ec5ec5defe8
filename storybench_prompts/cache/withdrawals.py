"""What Directus no longer publishes, and what ``latest()`` has served: which copies may go out.

Two guards keep what is served from going back. A version Directus withdrew (not found when
asked by number, above the latest it reports, or missing from a full listing) is remembered
here and never served from the mirror again, even if marking it withdrawn there failed. And
``latest()`` never serves a lower version than the highest it served, unless Directus itself
says the latest is lower. The ledger decides; ``answers.py`` (what an answer withdraws) and ``fallback.py`` (which
copy may go out) act on it (``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..content.models import VersionedContent
from .entries import LATEST, Entry, Key, newer

__all__ = ["MirrorVerdict", "WithdrawalLedger"]

C = TypeVar("C", bound=VersionedContent)

_REMEMBERED = 4096


@dataclass(frozen=True, slots=True)
class MirrorVerdict(Generic[C]):
    """What to serve instead of a mirror copy (None: nothing), and whether the mirror still
    holds versions above Directus's latest that it should mark withdrawn (``withdraw_above``)."""

    copy: C | None
    withdraw_above: int | None = None


class WithdrawalLedger(Generic[C]):
    __slots__ = ("_checked_for", "_withdrawn", "best_latest", "directus_latest")

    def __init__(self) -> None:
        self.directus_latest: int | None = None
        """What Directus last said is the latest version (None: not asked yet; -1: none)."""
        self.best_latest: C | None = None
        """The highest set ``latest()`` served (held here, not in the evictable cache)."""
        self._withdrawn: dict[int, None] = {}  # insertion-ordered: oldest forgotten first
        self._checked_for: int | None = None

    def is_withdrawn(self, version: int) -> bool:
        return version in self._withdrawn

    def remember(self, versions: Iterable[int]) -> None:
        for version in versions:
            self._withdrawn.pop(version, None)
            self._withdrawn[version] = None
        while len(self._withdrawn) > _REMEMBERED:
            del self._withdrawn[next(iter(self._withdrawn))]

    def published(self, version: int) -> None:
        """Directus served this version: it is published (again)."""
        self._withdrawn.pop(version, None)

    def latest_answered(self, content: C) -> bool:
        """Directus answered "latest" with ``content``. True the first time it names this
        version: versions above it should be looked for and withdrawn."""
        self.directus_latest = content.version
        self.best_latest = content
        if self._checked_for == content.version:
            return False
        self._checked_for = content.version
        return True

    def nothing_published(self) -> None:
        """Directus answered that no version is published at all."""
        self.directus_latest = -1
        self.best_latest = None

    def version_gone(self, version: int) -> None:
        """Directus answered that this version is not published."""
        self.remember([version])
        if self.best_latest is not None and self.best_latest.version == version:
            self.best_latest = None

    def servable(self, key: Key, copy: C, current: Entry[C] | None) -> MirrorVerdict[C]:
        """The mirror's copy for ``key``, unless something better or more current says otherwise."""
        latest = self.directus_latest
        above_latest = key == LATEST and latest is not None and copy.version > latest
        if copy.version in self._withdrawn or above_latest:
            best = self.best_copy() if key == LATEST else None
            # Directus's latest is lower: the mirror has not caught up with a withdrawal.
            return MirrorVerdict(best, withdraw_above=latest if above_latest else None)
        best_latest = self.best_latest
        if key == LATEST and best_latest is not None and copy.version < best_latest.version:
            return MirrorVerdict(self.best_copy())  # latest() never goes back in time
        if current is not None and newer(current.served, copy):
            return MirrorVerdict(current.stale_copy())  # a newer answer landed meanwhile
        if key == LATEST and (best_latest is None or copy.version >= best_latest.version):
            self.best_latest = copy
        return MirrorVerdict(copy)

    def best_copy(self) -> C | None:
        """The highest set latest() served, as a stale copy, if it may still be served."""
        best = self.best_latest
        if best is None or best.version in self._withdrawn:
            return None
        if self.directus_latest is not None and best.version > self.directus_latest:
            return None
        provenance = best.provenance
        assert provenance is not None
        return best.with_provenance(
            provenance.model_copy(update={"source": "cache", "stale": True, "hedged": False})
        )
