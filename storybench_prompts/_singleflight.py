"""Single-flight: concurrent callers for one key share one call.

The shared call runs in a task group owned by the caller of :meth:`SingleFlight.join`, never
in a waiter's task, so a waiter that is cancelled or times out leaves the call running for
the others (and for the cache it fills).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

__all__ = ["Flight", "SingleFlight"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Flight(Generic[T]):
    """One shared call: wait for it with :meth:`wait`, or check :attr:`done` first."""

    __slots__ = ("_result", "done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self._result: T | None = None
        self.error: BaseException | None = None

    async def wait(self) -> T:
        await self.done.wait()
        return self.result()

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        assert self._result is not None
        return self._result


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._flights: dict[K, Flight[T]] = {}

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    def join(self, key: K, call: Callable[[], Awaitable[T]], task_group: TaskGroup) -> Flight[T]:
        """The flight for ``key``: the running one, or a new one started in ``task_group``."""
        flight = self._flights.get(key)
        if flight is not None:
            return flight
        flight = Flight[T]()
        self._flights[key] = flight

        async def run() -> None:
            try:
                flight._result = await call()
            except anyio.get_cancelled_exc_class():
                flight.error = RuntimeError("the shared fetch was cancelled (repository closed)")
                raise
            except Exception as exc:
                flight.error = exc
            finally:
                del self._flights[key]
                flight.done.set()

        task_group.start_soon(run, name=f"single-flight {key!r}")
        return flight
