"""The cache's table: entries by key (fresh, stale, kept for errors) and "no such version".

A key is a version number or :data:`LATEST`. An entry keeps the object handed out on fresh
hits and three deadlines in clock seconds: fresh until ``fresh_until``, served at once while a
background refresh runs until ``stale_until``, and kept to serve when Directus fails until
``keep_until`` (when the table drops it). A "not found" answer is remembered for
``not_found_ttl``; each caller gets a fresh copy of the stored error.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Hashable
from typing import Any, Final, Generic, TypeVar

from cachetools import TLRUCache, TTLCache

from .._exceptions import PromptSetNotFoundError, StorybenchPromptsError
from ..content.models import Provenance, VersionedContent
from .policy import CachePolicy

__all__ = ["LATEST", "Entry", "EntryTable", "Key", "newer", "version_of"]


class _Latest:
    """The key of "the latest version": an object that no caller's argument equals, so
    ``get("latest")`` is never served the latest from the cache."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LATEST"


LATEST: Final = _Latest()
Key = int | _Latest  # a version number, or LATEST


def version_of(key: Key) -> int | None:
    """The version number a key asks for; None for LATEST."""
    return key if isinstance(key, int) else None


C = TypeVar("C", bound=VersionedContent)


class Entry(Generic[C]):
    """A cached set: the object handed out on fresh hits, and its deadlines (clock seconds)."""

    __slots__ = (
        "fresh_until",
        "from_origin",
        "invalidated",
        "keep_until",
        "served",
        "stale_until",
        "started",
    )

    def __init__(
        self,
        content: C,
        *,
        fresh_until: float,
        stale_until: float,
        keep_until: float,
        from_origin: bool,
        started: float | None = None,
    ) -> None:
        provenance = content.provenance
        # Built once at insertion so a fresh hit allocates nothing.
        self.served: C = content.with_provenance(
            Provenance(
                source="cache",
                origin=provenance.origin if provenance else "directus",
                fetched_at_epoch=provenance.fetched_at_epoch if provenance else time.time(),
            )
        )
        self.fresh_until = fresh_until
        self.stale_until = stale_until
        self.keep_until = keep_until
        self.from_origin = from_origin
        self.started = started
        """When the fetch that brought it began (clock seconds; None: not a fetch of ours)."""
        self.invalidated = False

    def invalidate(self) -> None:
        """Directus changed: never served as fresh again (the hit path checks only
        ``fresh_until``); still a copy to serve if the refetch fails."""
        self.invalidated = True
        self.fresh_until = float("-inf")

    def stale_copy(self, origin_error: str | None = None) -> C:
        assert self.served.provenance is not None
        return self.served.with_provenance(
            self.served.provenance.model_copy(update={"stale": True, "origin_error": origin_error})
        )


def _entry_expiry(_key: Hashable, entry: Entry[Any], _now: float) -> float:
    return entry.keep_until


def newer(candidate: VersionedContent, than: VersionedContent) -> bool:
    """Whether ``candidate`` should be preferred to ``than`` for the same key."""
    if candidate.version != than.version:
        return candidate.version > than.version
    a, b = candidate.provenance, than.provenance
    return a is not None and b is not None and a.fetched_at_epoch > b.fetched_at_epoch


class EntryTable(Generic[C]):
    """Entries by key, and remembered "no such version" answers (both bounded)."""

    __slots__ = ("_clock", "_policy", "entries", "not_found", "refused")

    def __init__(self, policy: CachePolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self.entries: TLRUCache[Key, Entry[C]] = TLRUCache(
            maxsize=policy.maxsize, ttu=_entry_expiry, timer=clock
        )
        """Read directly by the hit path (subscripting beats ``Cache.get()`` several times)."""
        # Bounded, so a benchmark config full of typos cannot grow it without limit.
        self.not_found: TTLCache[Key, PromptSetNotFoundError] = TTLCache(
            maxsize=1024, ttl=policy.not_found_ttl, timer=clock
        )
        # Directus's answer about one version that refuses it (invalid content, a 403 on its
        # collection): not asked again until a change touches it or not_found_ttl passes.
        self.refused: TTLCache[Key, StorybenchPromptsError] = TTLCache(
            maxsize=1024, ttl=policy.not_found_ttl, timer=clock
        )

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: Key) -> Entry[C] | None:
        return self.entries.get(key)

    def pop(self, key: Key) -> None:
        self.entries.pop(key, None)

    def snapshot(self) -> list[tuple[Key, Entry[C]]]:
        return list(self.entries.items())

    def store(
        self, key: Key, content: C, *, fresh_for: float, now: float, started: float | None = None
    ) -> None:
        fresh_until = now + fresh_for
        policy = self._policy
        self.entries[key] = Entry(
            content,
            fresh_until=fresh_until,
            stale_until=fresh_until + policy.max_stale,
            keep_until=fresh_until + max(policy.max_stale, policy.stale_if_error),
            from_origin=content.provenance is None or content.provenance.source == "directus",
            started=started,
        )

    def store_fallback(self, key: Key, copy: C, *, probe_in: float) -> None:
        """Reuse a copy served because the origin failed for ``fallback_ttl`` (or until the
        next recovery probe is due, ``probe_in`` seconds, if sooner, so the next caller after
        it notices a recovery), unless the table already holds something newer."""
        current = self.entries.get(key)
        if current is not None and not newer(copy, current.served):
            return
        fresh_for = min(self._policy.fallback_ttl, max(probe_in, 0.0))
        self.store(key, copy, fresh_for=fresh_for, now=self._clock())

    # -- "no such version" ----------------------------------------------------------------

    def remembered_not_found(self, key: Key) -> PromptSetNotFoundError | None:
        """A fresh copy of the remembered answer for ``key``, or None."""
        # Checking emptiness first keeps the common miss cheap (cachetools .get() is not).
        stored = self.not_found.get(key) if self.not_found else None
        return fresh_error(stored) if stored is not None else None

    def remember_not_found(self, key: Key, exc: PromptSetNotFoundError) -> None:
        self.not_found[key] = exc

    def remember_refused(self, key: Key, exc: StorybenchPromptsError) -> None:
        self.refused[key] = exc

    def remembered_refused(self, key: Key) -> StorybenchPromptsError | None:
        return self.refused.get(key) if self.refused else None

    def forget_refused(self, *keys: Key) -> None:
        if self.refused:
            for key in keys:
                self.refused.pop(key, None)

    def forget_not_found(self, *keys: Key) -> None:
        for key in keys:
            self.not_found.pop(key, None)

    def clear(self) -> None:
        self.entries.clear()
        self.not_found.clear()
        self.refused.clear()


def fresh_error(exc: PromptSetNotFoundError) -> PromptSetNotFoundError:
    """Each caller gets its own exception: re-raising one stored instance grows its traceback
    with every raise, without bound."""
    clone = copy.copy(exc)
    clone.__traceback__ = None
    clone.__cause__ = clone.__context__ = None
    return clone
