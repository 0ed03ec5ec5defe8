"""Single-flight: concurrent callers for one key share one call.

The shared call runs in a task group owned by the caller of :meth:`SingleFlight.join`, never
in a waiter's task, so a waiter that is cancelled or times out leaves the call running for
the others (and for the cache it fills). However the call ends (a result, an exception, a
cancellation, even ``KeyboardInterrupt``), the flight is removed and every waiter is woken
with a result or an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from .._exceptions import FetchInterruptedError

__all__ = ["Flight", "SingleFlight"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Flight(Generic[T]):
    """One shared call: wait for it with :meth:`wait`, or check :attr:`done` first.

    ``attempt_failed`` is set at the first failed attempt of a call that retries (the call
    reports it through :meth:`report_failed_attempt`), before the call itself ends.
    """

    __slots__ = (
        "_has_result",
        "_result",
        "attempt_error",
        "attempt_failed",
        "done",
        "error",
        "overdue",
    )

    def __init__(self) -> None:
        self.overdue = False
        """A waiter gave up waiting for it (``fallback_after``): it is known to be slow."""
        self.done = anyio.Event()
        self.attempt_failed = anyio.Event()
        self.attempt_error: BaseException | None = None
        self._result: T | None = None
        self._has_result = False
        self.error: BaseException | None = None

    def report_failed_attempt(self, exc: BaseException) -> None:
        if self.attempt_error is None:
            self.attempt_error = exc
            self.attempt_failed.set()

    async def wait(self) -> T:
        await self.done.wait()
        return self.result()

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        if not self._has_result:
            raise FetchInterruptedError("the shared fetch ended without a result")
        return self._result  # type: ignore[return-value]


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._flights: dict[K, Flight[T]] = {}

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    def join(
        self, key: K, call: Callable[[Flight[T]], Awaitable[T]], task_group: TaskGroup
    ) -> Flight[T]:
        """The flight for ``key``: the running one, or a new one started in ``task_group``.

        ``call`` receives its flight (to report failed attempts on it).
        """
        flight = self._flights.get(key)
        if flight is not None:
            return flight
        flight = Flight[T]()
        self._flights[key] = flight

        async def run() -> None:
            try:
                flight._result = await call(flight)
                flight._has_result = True
            except Exception as exc:
                flight.error = exc
            except BaseException as exc:
                # Cancellation (the repository closing, or a foreign cancel scope),
                # KeyboardInterrupt, SystemExit: the waiters get a clear error, and the
                # exception goes on up through the task that ran the call.
                flight.error = FetchInterruptedError(
                    f"the shared fetch was interrupted ({type(exc).__name__})"
                )
                raise
            finally:
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.done.set()

        task_group.start_soon(run, name=f"single-flight {key!r}")
        return flight
