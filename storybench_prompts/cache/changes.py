"""Directus's realtime channel as one kind's cache sees it.

While the channel is open and subscribed to every collection the kind is read from, an entry
that no change event has touched is still current past its TTL. Every change is numbered and
kept for a while: a fetch that began before a change touching what it brings may hold the old
content, so that answer is stored as needing a fetch again. Which keys an event touches is
decided here once (:meth:`ChangeTracker.hits`), for the entries and for the fetches alike.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..content.kinds import ContentKind
from ..content.models import VersionedContent
from ..content.tracking import touches, versions_named
from .entries import LATEST, Key

if TYPE_CHECKING:
    from ..sources.realtime import ChannelStatus

__all__ = ["ChangeEvent", "ChangeFeed", "ChangeTracker"]

_KEPT = 512
"""Changes remembered for fetches under way (a fetch older than all of them counts as raced)."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change event, as it concerns a kind."""

    collection: str | None
    """The collection it happened in; None when anything of the kind may have changed."""
    event: str
    rows: tuple[Mapping[str, Any], ...] | None
    named: frozenset[int]
    """The version numbers it names (an event on the version collection)."""
    latest_moved: bool
    """Whether "latest" may point elsewhere now (a version published, withdrawn, deleted)."""


class ChangeFeed(Protocol):
    """What the cache needs of a realtime channel (``sources.realtime.RealtimeChannel``)."""

    @property
    def status(self) -> ChannelStatus: ...

    async def run(self) -> None: ...


class ChangeTracker:
    __slots__ = ("_channel", "_collections", "_kind", "_log", "_parents", "generation")

    def __init__(self, kind: ContentKind[Any], channel: Callable[[], ChangeFeed | None]) -> None:
        self._kind = kind
        self._collections = frozenset(kind.related_collections)
        self._parents = kind.parents()
        self._channel = channel
        self._log: deque[tuple[int, ChangeEvent]] = deque(maxlen=_KEPT)
        self.generation = 0

    def changed(
        self, collection: str | None, event: str, rows: list[Mapping[str, Any]] | None
    ) -> ChangeEvent:
        """Note a change (``rows`` None: anything of the kind may have changed)."""
        named: set[int] = set()
        latest_moved = rows is None
        if rows is not None and collection == self._kind.collection:
            named, latest_moved = versions_named(collection, event, rows)
        change = ChangeEvent(
            collection,
            event,
            None if rows is None else tuple(rows),
            frozenset(named),
            latest_moved,
        )
        self.generation += 1
        self._log.append((self.generation, change))
        return change

    def hits(self, change: ChangeEvent, key: Key, content: VersionedContent) -> bool:
        """Whether ``change`` touches the entry ``key`` holding ``content``."""
        if change.rows is None:
            return True
        if key == LATEST and change.latest_moved:
            return True
        if content.version in change.named:
            return True
        return touches(
            content.directus_keys(),
            change.collection or "",
            change.event,
            change.rows,
            self._parents,
        )

    def raced_absent(self, since: int, key: Key) -> bool:
        """Whether a change after generation ``since`` may have published ``key`` (so a "not
        published" answer may predate it)."""
        if since >= self.generation:
            return False
        if not self._log or self._log[0][0] > since + 1:
            return True
        return any(
            g > since
            and (
                c.rows is None
                or (key == LATEST and c.latest_moved)
                or (key != LATEST and key in c.named)
            )
            for g, c in self._log
        )

    def raced(self, since: int, key: Key, content: VersionedContent) -> bool:
        """Whether a change after generation ``since`` touches ``content`` fetched for ``key``
        (so the answer may predate it)."""
        if since >= self.generation:
            return False
        if not self._log or self._log[0][0] > since + 1:
            return True  # older than every change kept: it may have missed one
        return any(g > since and self.hits(c, key, content) for g, c in self._log)

    def pushed(self) -> bool:
        """Whether Directus's changes to this kind arrive as they happen."""
        channel = self._channel()
        if channel is None:
            return False
        status = channel.status
        if status.state != "open":
            return False
        return not self._collections.intersection(status.unsubscribed)
