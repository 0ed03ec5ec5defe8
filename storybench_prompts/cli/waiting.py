"""Waiting for Directus, visibly: ``waiting for Directus... 7 s`` on stderr once an answer
has been awaited for a second.

``sync``, ``warm`` and ``get --source directus`` keep the long read timeout a serverless
Directus needs to wake; this is so that a person sees why nothing happens. On a terminal it is
one live line, rewritten each second and erased when the answer comes (or shown in the
progress bar, while there is one); in a pipe or a log, one line at the first second and one
every ten seconds after.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ..content.models import VersionedContent
from ..sources.base import PromptRepository
from ..sources.wrapped import WrappedSource
from .app import State

__all__ = ["DirectusWait", "TimedSource", "with_waiting_notice"]

C = TypeVar("C", bound=VersionedContent)
T = TypeVar("T")

NOTICE_AFTER = 1.0
LOG_EVERY = 10.0


class DirectusWait:
    """Requests in flight to Directus, and how long since it last answered one of them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending = 0
        self._since: float | None = None
        self.sink: Callable[[str | None], None] | None = None
        """Where a terminal shows the live line (None: the notice's own line on stderr)."""

    def started(self) -> None:
        if self._pending == 0:
            self._since = self._clock()
        self._pending += 1

    def answered(self) -> None:
        self._pending = max(0, self._pending - 1)
        self._since = self._clock() if self._pending else None

    def waited(self) -> float | None:
        """Seconds since Directus last answered, while something is awaited; else None."""
        return None if self._since is None else self._clock() - self._since

    async def track(self, call: Awaitable[T]) -> T:
        self.started()
        try:
            return await call
        finally:
            self.answered()


class TimedSource(WrappedSource[C]):
    """A source whose calls are tracked by a :class:`DirectusWait` (any ``PromptRepository``)."""

    def __init__(self, source: PromptRepository[C], wait: DirectusWait) -> None:
        super().__init__(source)
        self._wait = wait

    async def around(self, version: int | None, call: Awaitable[T]) -> T:
        return await self._wait.track(call)


def notice_text(waited: float) -> str:
    return f"waiting for Directus... {waited:.0f} s"


async def _show(state: State, wait: DirectusWait, live: bool, after: float) -> None:
    shown = False
    logged_at: float | None = None
    try:
        while True:
            await anyio.sleep(0.25 if live else 0.2)
            waited = wait.waited()
            if waited is None or waited < after:
                if shown:
                    _live_line(wait, None)
                    shown = False
                logged_at = None
                continue
            if live:
                _live_line(wait, notice_text(waited))
                shown = True
            elif logged_at is None or waited - logged_at >= LOG_EVERY:
                state.warn(f"{notice_text(waited)} (no answer yet)")
                logged_at = waited
    finally:
        if shown:
            _live_line(wait, None)


def _live_line(wait: DirectusWait, text: str | None) -> None:
    if wait.sink is not None:
        wait.sink(text)
        return
    sys.stderr.write("\r\033[K" if text is None else f"\r\033[K{text}")
    sys.stderr.flush()


async def with_waiting_notice(
    state: State,
    wait: DirectusWait,
    fn: Callable[[], Awaitable[T]],
    *,
    after: float = NOTICE_AFTER,
) -> T:
    """``await fn()``, saying so on stderr while Directus takes more than ``after`` seconds
    (one, by default) to answer what it asks (nothing with ``--quiet``)."""
    if state.quiet:
        return await fn()
    live = sys.stderr.isatty()
    failure: BaseException | None = None
    result: T | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_show, state, wait, live, after)
        try:
            result = await fn()
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:  # raised after the notice is gone, not in a group
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result  # type: ignore[return-value]
