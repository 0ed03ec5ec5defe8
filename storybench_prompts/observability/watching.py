"""The events of ``storybench-prompts watch``, for hooks (OpenTelemetry's, for its metrics page).

A watch reads Directus through its sources, not through the cache, so it has events of its
own to give: each request to Directus (``OriginAttempt``), Directus's state through the same
outage gate the cache uses (``StateChanged``), and each change applied to the mirror
(``MirrorWritten``, and ``ContentChanged`` for a version whose content changed in place).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Literal, TypeVar

from .._events import ContentChanged, Hooks, MirrorWritten, OriginAttempt
from .._exceptions import PromptSetNotFoundError, StorybenchPromptsError
from ..cache.outage import OriginHealth, OutageGate, ProbeSchedule
from ..content.kinds import ContentKind
from ..content.models import VersionedContent
from ..ops.watch import WatchEvent
from ..sources.attempts import observing_attempts
from ..sources.base import PromptRepository
from ..sources.wrapped import WrappedSource

__all__ = ["ObservedSource", "WatchObserver"]

C = TypeVar("C", bound=VersionedContent)
T = TypeVar("T")

_WRITES: dict[str, Literal["new", "updated", "withdrawn"]] = {
    "new": "new",
    "updated": "updated",
    "withdrawn": "withdrawn",
}


class WatchObserver:
    def __init__(self, hooks: Hooks, name: str = "directus") -> None:
        self._hooks = hooks
        health = OriginHealth(name, emit=hooks.emit, meanwhile="the mirror keeps what it has")
        self.gate = OutageGate(health, ProbeSchedule(time.monotonic))

    def source(self, kind: ContentKind[C], source: PromptRepository[C]) -> ObservedSource[C]:
        return ObservedSource(source, kind, self)

    def applied(self, event: WatchEvent) -> None:
        """One change the watch applied to the mirror."""
        if event.version is None or event.outcome not in _WRITES:
            return
        outcome = _WRITES[event.outcome]
        action: Literal["save", "withdraw"] = "withdraw" if outcome == "withdrawn" else "save"
        self._hooks.emit(MirrorWritten(event.kind, event.version, action, outcome))
        if event.outcome == "updated" and event.previous_hash and event.config_hash:
            self._hooks.emit(
                ContentChanged(
                    event.kind,
                    event.version,
                    event.previous_hash,
                    event.config_hash,
                    "sync",
                    time.time(),
                )
            )

    async def observed(self, kind: str, version: int | None, call: Awaitable[T]) -> T:
        def on_attempt(exc: BaseException | None, seconds: float) -> None:
            self._hooks.emit(
                OriginAttempt(
                    kind,
                    version,
                    "ok" if exc is None else "error",
                    None if exc is None else type(exc).__name__,
                    getattr(exc, "status", None) if exc is not None else 200,
                    seconds,
                )
            )

        with observing_attempts(on_attempt=on_attempt):
            try:
                result = await call
            except PromptSetNotFoundError:
                self.gate.answered()  # Directus answered: there is no such version
                raise
            except StorybenchPromptsError as exc:
                self.gate.failed(exc)
                raise
        self.gate.answered()
        return result


class ObservedSource(WrappedSource[C]):
    """A source whose calls are observed by a :class:`WatchObserver` (any ``PromptRepository``)."""

    def __init__(
        self, source: PromptRepository[C], kind: ContentKind[C], observer: WatchObserver
    ) -> None:
        super().__init__(source)
        self._kind_name = kind.name
        self._observer = observer

    async def around(self, version: int | None, call: Awaitable[T]) -> T:
        return await self._observer.observed(self._kind_name, version, call)
