"""Listeners for people: a plain or an async callable called once per transition or change.

A listener is a hook that picks one kind of event and hands its callback what a person wants
of it (the new ``OriginStatus``, the ``ContentChanged``). A plain callable runs where the event
is emitted; an async one runs in the stack's task group, so a slow alert never delays a
lookup. One that raises is logged once (``Hooks``) and keeps receiving the next events.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anyio.abc import TaskGroup

from .._events import Event
from .._logs import get_logger

__all__ = ["Listener", "listener"]

logger = get_logger("storybench_prompts.cache")

E = TypeVar("E")
T = TypeVar("T")

Listener = Callable[[T], None] | Callable[[T], Awaitable[None]]
"""A plain or an async callable of one argument."""


def listener(
    callback: Callable[[T], Any],
    picks: Callable[[Event], T | None],
    task_group: Callable[[], TaskGroup | None],
) -> Callable[[Event], None]:
    """A hook calling ``callback`` with ``picks(event)`` for each event it picks (not None)."""
    if not callable(callback):
        raise TypeError(f"a listener must be callable, not {type(callback).__name__}")
    failed = False

    async def awaited(result: Awaitable[None]) -> None:
        nonlocal failed
        try:
            await result
        except Exception:
            if not failed:
                failed = True
                logger.exception("a storybench-prompts listener (%r) raised; logged once", callback)

    def hook(event: Event) -> None:
        picked = picks(event)
        if picked is None:
            return
        result = callback(picked)
        if inspect.isawaitable(result):
            group = task_group()
            if group is None:  # the stack is not entered: nothing could run it to the end
                if inspect.iscoroutine(result):
                    result.close()
                logger.warning(
                    "an async listener (%r) was not run: the repository is not entered", callback
                )
                return
            group.start_soon(awaited, result, name="storybench-prompts listener")

    return hook
