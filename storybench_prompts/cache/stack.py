"""What the repositories over one Directus share, composed once.

The outage gate (one view of Directus's health and one probe schedule), the realtime channel,
the hooks, one task group for background work, and one lifecycle: entering any repository of
the stack enters the stack, which runs the channel; leaving lets every repository's mirror
writes land, cancels background work, and closes each origin and mirror once. A change the
channel reports goes to every repository whose kind reads that collection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import anyio
from anyio.abc import TaskGroup

from .._events import (
    ChannelChanged,
    ContentChanged,
    Event,
    Hook,
    Hooks,
    OriginStatus,
    StateChanged,
)
from .._logs import get_logger
from ..content.kinds import ContentKind
from .listeners import Listener, listener
from .outage import OriginHealth, OutageGate, ProbeSchedule
from .policy import CachePolicy

if TYPE_CHECKING:
    from ..sources.realtime import ChannelStatus
    from .changes import ChangeFeed

__all__ = ["Stack"]

logger = get_logger("storybench_prompts.cache")


class _Closeable(Protocol):
    async def aclose(self) -> None: ...


class _Member(Protocol):
    """What the stack needs of each repository."""

    @property
    def kind(self) -> ContentKind[Any]: ...

    def changed(
        self, collection: str | None, event: str, rows: list[Mapping[str, Any]] | None
    ) -> None: ...

    def connected(self) -> None: ...

    async def drain(self) -> None: ...


class Stack:
    def __init__(
        self,
        gate: OutageGate,
        *,
        hooks: Hooks | None = None,
        channel: ChangeFeed | None = None,
    ) -> None:
        self.gate = gate
        self.hooks = hooks if hooks is not None else Hooks()
        self.channel = channel
        self._members: list[_Member] = []
        self._closing: list[_Closeable] = []
        self._task_group: TaskGroup | None = None
        self._closed = False
        self._channel_up: bool | None = None

    @classmethod
    def for_origin(
        cls,
        name: str,
        *,
        policy: CachePolicy,
        clock: Callable[[], float],
        rand: Callable[[], float],
        hooks: Iterable[Hook] = (),
    ) -> Stack:
        """A stack over one origin (``name``: the origin's, for logs): its gate, probe
        schedule and hooks, with nothing attached yet."""
        events = Hooks(hooks)
        schedule = ProbeSchedule(
            clock, initial=policy.probe_initial, maximum=policy.probe_max, rand=rand
        )
        return cls(OutageGate(OriginHealth(name, emit=events.emit), schedule), hooks=events)

    def add(self, member: _Member, closing: Iterable[_Closeable] = ()) -> None:
        """A repository of this stack, and what leaving the stack closes for it."""
        self._members.append(member)
        self._closing.extend(c for c in closing if all(c is not d for d in self._closing))

    def emit(self, event: Event) -> None:
        self.hooks.emit(event)

    # -- listeners -------------------------------------------------------------------------

    def on_status_change(self, callback: Listener[OriginStatus]) -> Callable[[], None]:
        """Call ``callback`` with the new ``OriginStatus`` at each change of Directus's state
        (once per transition). Returns a function that unsubscribes."""

        def picks(event: Event) -> OriginStatus | None:
            return event.status if isinstance(event, StateChanged) else None

        return self.hooks.add(listener(callback, picks, lambda: self._task_group))

    def on_content_change(
        self, callback: Listener[ContentChanged], *, kind: str | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` with each ``ContentChanged`` (a version that now holds other
        content; of ``kind`` only, when given), once per change. Returns a function that
        unsubscribes."""

        def picks(event: Event) -> ContentChanged | None:
            if isinstance(event, ContentChanged) and event.old_hash is not None:
                return event if kind is None or event.kind == kind else None
            return None

        return self.hooks.add(listener(callback, picks, lambda: self._task_group))

    def hit_counter(self, kind: str) -> Callable[[int], None] | None:
        """What counts fresh cache hits of ``kind`` (``count(n)``) for the hooks that count
        hits themselves (``hit_counter(kind)``, as the OpenTelemetry hook has); None when none
        does."""
        counters: list[Callable[[int], None]] = []
        for hook in self.hooks:
            make = getattr(hook, "hit_counter", None)
            if not callable(make):
                continue
            try:
                counters.append(make(kind))
            except Exception:
                logger.exception("a storybench-prompts hook (%r) has no hit counter", hook)
        if not counters:
            return None
        failed: set[int] = set()

        def count_all(hits: int) -> None:
            # Like any hook, a counter that raises is logged once and never breaks a lookup.
            for count in counters:
                try:
                    count(hits)
                except Exception:
                    if id(count) not in failed:
                        failed.add(id(count))
                        logger.exception(
                            "a storybench-prompts hit counter (%r) raised; logged once", count
                        )

        return count_all

    def status(self) -> OriginStatus:
        return self.gate.status

    # -- background work -------------------------------------------------------------------

    @property
    def open_task_group(self) -> TaskGroup | None:
        """The task group while the stack is entered, else None."""
        return self._task_group

    @property
    def task_group(self) -> TaskGroup:
        if self._task_group is None:
            raise RuntimeError(
                "CachingRepository must be used as `async with repository:` "
                "(it runs background refreshes in its own task group)"
            )
        return self._task_group

    # -- the realtime channel --------------------------------------------------------------

    def attach_channel(self, channel: ChangeFeed) -> None:
        if self._task_group is not None:
            raise RuntimeError("attach the realtime channel before entering the repository")
        self.channel = channel

    def channel_status(self) -> ChannelStatus | None:
        return self.channel.status if self.channel is not None else None

    def describe_channel(self, *, current: bool) -> dict[str, Any] | None:
        """The channel's state as plain data (None without one); ``current``: whether the
        describing kind's entries are kept current by it."""
        status = self.channel_status()
        if status is None:
            return None
        return {
            "state": str(status.state),
            "since": status.since,
            "reconnects": status.reconnects,
            "events": status.events,
            "last_error": status.last_error,
            "unsubscribed": list(status.unsubscribed),
            "current": current,
        }

    def channel_changed(self, status: ChannelStatus) -> None:
        """The channel's state moved: a ``ChannelChanged`` when it went up or down."""
        up = status.state == "open"
        if up == self._channel_up:
            return
        self._channel_up = up
        self.emit(ChannelChanged(up, str(status.state), None if up else status.last_error))

    def content_changed(
        self,
        collection: str | None = None,
        event: str = "update",
        rows: list[Mapping[str, Any]] | None = None,
    ) -> None:
        """A change in a Directus collection (None: anything may have changed); ``rows`` are
        the event's rows (their keys and the fields subscribed to), None when not known."""
        for member in self._members:
            if collection is None:
                member.changed(None, event, None)
            elif collection in member.kind.related_collections:
                member.changed(collection, event, rows)

    def connected(self) -> None:
        """The realtime channel is subscribed (again): what changed meanwhile is not replayed."""
        for member in self._members:
            member.connected()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._closed or self._task_group is not None:
            raise RuntimeError("a CachingRepository is entered once; build a new one to reopen")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        if self.channel is not None:
            self._task_group.start_soon(self.channel.run, name="realtime channel")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        try:
            for member in self._members:
                await member.drain()
        finally:
            try:
                if task_group is not None:
                    task_group.cancel_scope.cancel()
                    await task_group.__aexit__(None, None, None)
            finally:
                self._task_group = None
                await self.aclose()

    async def aclose(self) -> None:
        """Cancel background work and close every origin and mirror the stack owns."""
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for closeable in self._closing:
                await closeable.aclose()
