"""Waiting with the injected sleep: the first of several events, or a call bounded in time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

__all__ = ["Sleep", "bounded", "first_of"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


async def first_of(*events: anyio.Event, timeout: float, sleep: Sleep) -> anyio.Event | None:  # noqa: ASYNC109 (the injected sleep times it)
    """The first of ``events`` to be set, or None when ``timeout`` passes first."""
    for event in events:
        if event.is_set():
            return event
    if timeout <= 0:
        return None
    winner: list[anyio.Event] = []
    async with anyio.create_task_group() as tg:

        async def watch(event: anyio.Event) -> None:
            await event.wait()
            winner.append(event)
            tg.cancel_scope.cancel()

        async def timer() -> None:
            await sleep(timeout)
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(watch, event)
        tg.start_soon(timer)
    return winner[0] if winner else None


async def bounded(call: Callable[[], Awaitable[T]], timeout: float, sleep: Sleep) -> list[T]:  # noqa: ASYNC109 (the injected sleep times it)
    """``[call()]``, or ``[]`` when ``timeout`` passed first; the call's exception is raised
    as itself (not as an ExceptionGroup)."""
    result: list[T] = []
    errors: list[Exception] = []
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            try:
                result.append(await call())
            except Exception as exc:  # raised below, not as an ExceptionGroup
                errors.append(exc)
            tg.cancel_scope.cancel()

        async def timer() -> None:
            await sleep(timeout)
            tg.cancel_scope.cancel()

        tg.start_soon(run)
        tg.start_soon(timer)
    if errors:
        raise errors[0]
    return result
