"""Keeping a mirror in step with Directus as it changes (``storybench-prompts watch``).

A full reconcile (every published version synced, versions Directus no longer publishes marked
withdrawn, the highest activated) runs at start, after every (re)connection of the realtime
channel (changes made while it was down are not replayed), whenever a change arrives for a
kind, and on an interval (the only thing that keeps the mirror current when Directus offers no
realtime channel). Changes that arrive during a reconcile are not lost: the kind is reconciled
again right after.

Each reconcile writes a version whole or not at all (the mirrors' own guarantee), so stopping
the watcher at any point leaves no half-written mirror.

A failure that will not fix itself by retrying (a rejected token, a wrong setting) stops the
watcher: :meth:`MirrorWatcher.run` raises it. Any other failure is reported and retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from .._defaults import DEFAULT_SYNC_CONCURRENCY, DEFAULT_WATCH_INTERVAL
from .._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    StorybenchPromptsError,
)
from .._logs import get_logger
from ..content.kinds import ContentKind
from ..mirrors.base import PromptMirror
from ..sources.base import PromptRepository
from .sync import SyncResult, sync_versions

__all__ = ["DEFAULT_WATCH_INTERVAL", "MirrorWatcher", "WatchEvent", "WatchedKind"]

logger = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WatchedKind:
    kind: ContentKind[Any]
    source: PromptRepository[Any]
    mirror: PromptMirror[Any]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change applied (``outcome`` as a sync reports it) or one reconcile that failed
    (``outcome`` ``reconcile_failed``, no version); ``line`` is how it reads."""

    kind: str
    outcome: str
    line: str
    version: int | None = None
    config_hash: str | None = None
    previous_hash: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.outcome,
            "kind": self.kind,
            "version": self.version,
            "config_hash": self.config_hash,
            "previous_hash": self.previous_hash,
            "drifted": self.outcome == "updated" and self.previous_hash is not None,
            "error": self.error,
        }


def _fatal(exc: BaseException | None) -> bool:
    """A failure retrying cannot fix: a rejected token, a wrong setting."""
    return isinstance(exc, DirectusAuthenticationError | ConfigurationError)


class MirrorWatcher:
    """Reconciles each kind's mirror with Directus when told something changed, or on time.

    ``report`` receives one line per change applied (and per failure), ``on_event`` the same
    as a :class:`WatchEvent`; ``sleep`` waits in the interval's seconds (injectable, so tests
    are instant). ``succeeded`` counts the reconciles that completed.
    """

    def __init__(
        self,
        watched: Sequence[WatchedKind],
        *,
        report: Callable[[str], None],
        interval: float = DEFAULT_WATCH_INTERVAL,
        concurrency: int = DEFAULT_SYNC_CONCURRENCY,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> None:
        self._watched = list(watched)
        self._report = report
        self._on_event = on_event
        self.succeeded = 0
        self._interval = interval
        self._concurrency = concurrency
        self._sleep = sleep
        self._dirty: set[str] = {w.kind.name for w in self._watched}
        self._wake = anyio.Event()
        self.reconciles = 0

    def changed(self, collection: str | None = None) -> None:
        """Something changed in ``collection`` (None: anything may have)."""
        for watched in self._watched:
            if collection is None or collection in watched.kind.related_collections:
                self._dirty.add(watched.kind.name)
        self._wake.set()

    async def run(self) -> None:
        """Reconcile until cancelled; raises a failure retrying cannot fix (a rejected
        token, a wrong setting)."""
        while True:
            if not self._dirty:
                await self._wait_for_change_or_interval()
            self._wake = anyio.Event()
            due, self._dirty = self._dirty, set()
            for watched in self._watched:
                if watched.kind.name in due:
                    await self.reconcile(watched)

    async def _wait_for_change_or_interval(self) -> None:
        async with anyio.create_task_group() as tg:

            async def timer() -> None:
                await self._sleep(self._interval)
                self.changed(None)

            tg.start_soon(timer)
            await self._wake.wait()
            tg.cancel_scope.cancel()

    async def reconcile(self, watched: WatchedKind) -> list[SyncResult]:
        """One full sync of a kind; reports what changed. Failures are reported, not raised,
        but for those retrying cannot fix (a rejected token, a wrong setting)."""
        self.reconciles += 1
        name = watched.kind.name
        try:
            results = await sync_versions(
                watched.source,
                watched.mirror,
                None,
                concurrency=self._concurrency,
                activate_highest=True,
            )
        except StorybenchPromptsError as exc:
            if _fatal(exc):
                raise
            self._emit(
                WatchEvent(
                    name,
                    "reconcile_failed",
                    f"{name}: reconcile failed, will retry: {_first_line(exc)}",
                    error=_first_line(exc),
                )
            )
            return []
        for result in results:
            if _fatal(result.error):
                assert result.error is not None
                raise result.error
        self.succeeded += 1
        for result in results:
            line = _change_line(name, result)
            if line:
                self._emit(
                    WatchEvent(
                        name,
                        result.outcome,
                        line,
                        version=result.version,
                        config_hash=result.config_hash,
                        previous_hash=result.previous_hash,
                        error=_first_line(result.error) if result.error is not None else None,
                    )
                )
        return results

    def _emit(self, event: WatchEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
        else:
            self._report(event.line)


def _change_line(name: str, result: SyncResult) -> str | None:
    if result.outcome == "unchanged":
        return None
    if result.outcome == "new":
        return f"{name} v{result.version}: new {result.config_hash}"
    if result.outcome == "updated":
        return (
            f"{name} v{result.version}: updated {result.previous_hash} -> {result.config_hash}"
            " (content changed under the same version number)"
        )
    if result.outcome == "withdrawn":
        return f"{name} v{result.version}: withdrawn (no longer published; kept as a record)"
    detail = f": {_first_line(result.error)}" if result.error is not None else ""
    return f"{name} v{result.version}: {result.outcome}{detail}"


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
