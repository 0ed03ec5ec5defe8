"""Directus's realtime channel as one kind's cache sees it.

While the channel is open and subscribed to every collection the kind is read from, an entry
that no change event has touched is still current past its TTL. Every change bumps a
generation: a fetch that began before the last change may hold the old content, so what it
brings is stored as needing a fetch again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..content.kinds import ContentKind

if TYPE_CHECKING:
    from ..sources.realtime import ChannelStatus

__all__ = ["ChangeFeed", "ChangeTracker"]


class ChangeFeed(Protocol):
    """What the cache needs of a realtime channel (``sources.realtime.RealtimeChannel``)."""

    @property
    def status(self) -> ChannelStatus: ...

    async def run(self) -> None: ...


class ChangeTracker:
    __slots__ = ("_channel", "_collections", "generation")

    def __init__(self, kind: ContentKind[Any], channel: Callable[[], ChangeFeed | None]) -> None:
        self._collections = frozenset(kind.related_collections)
        self._channel = channel
        self.generation = 0

    def changed(self) -> None:
        self.generation += 1

    def pushed(self) -> bool:
        """Whether Directus's changes to this kind arrive as they happen."""
        channel = self._channel()
        if channel is None:
            return False
        status = channel.status
        if status.state != "open":
            return False
        return not self._collections.intersection(status.unsubscribed)
