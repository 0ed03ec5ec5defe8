"""Retrying a Directus call: which errors, how long to wait, when to give up.

A small loop of our own rather than a retry library, because the wait must come from the
server when it gives one (``Retry-After`` on 429/503), the whole call has one deadline, and the
clock and sleep must be injectable so tests are instant. stamina and tenacity do the backoff
well but neither reads the wait from the exception it retries without the same amount of glue.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

import anyio

from .._defaults import (
    DEFAULT_INITIAL_BACKOFF,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRY_DEADLINE,
)
from .._exceptions import (
    DirectusConnectionError,
    DirectusRateLimitedError,
    DirectusServerError,
    DirectusTimeoutError,
    StorybenchPromptsError,
)
from .attempts import attempt_ended, attempt_failed, attempts_allowed, retry_guard

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "RetryPolicy",
    "backoff",
    "call_with_retries",
]

T = TypeVar("T")

RETRIED_STATUSES = frozenset({502, 503, 504})


def backoff(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rand: Callable[[], float],
    jitter: float = 1.0,
) -> float:
    """Seconds to wait after ``attempt`` failures (0 for the first retry): exponential from
    ``initial`` up to ``maximum``, jittered.

    ``jitter`` is the share of the wait that is random: 1.0 is full jitter (anywhere from 0 to
    the ceiling), 0.5 keeps the wait in the ceiling's upper half, 0.0 none. The one backoff of
    the package: Directus retries, recovery probes and realtime reconnects all use it.
    """
    ceiling = min(maximum, initial * 2 ** min(attempt, 32))
    return float(ceiling * (1.0 - jitter + jitter * rand()))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed Directus call is retried.

    Retried: connection errors, 502/503/504 and 429. Never retried: other 4xx, invalid
    responses, and read timeouts (a request that already waited the full read timeout is not
    worth doubling). Waits grow exponentially from ``initial_backoff`` up to ``max_backoff``
    with full jitter; a server ``Retry-After`` replaces the computed wait, capped at
    ``max_retry_after``.

    ``deadline`` bounds the whole call, measured from the start of the first attempt: an
    attempt still running when it passes is cancelled (a :class:`DirectusTimeoutError`), and
    no wait starts that would end past it (the last error is raised instead).
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    deadline: float = DEFAULT_RETRY_DEADLINE

    def is_retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, DirectusConnectionError | DirectusRateLimitedError):
            return True
        return isinstance(exc, DirectusServerError) and exc.status in RETRIED_STATUSES

    def wait_before(self, attempt: int, exc: BaseException, rand: Callable[[], float]) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` starts at 1)."""
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and hint >= 0:
            return min(float(hint), self.max_retry_after)
        return backoff(
            attempt - 1, initial=self.initial_backoff, maximum=self.max_backoff, rand=rand
        )


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str = "the Directus call",
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> T:
    """``call()``, retried by ``policy``, all within ``policy.deadline`` seconds.

    ``clock`` measures the deadline and ``sleep`` waits between attempts; both are injectable
    so tests need not wait. The time left is read from ``clock`` before each attempt and the
    attempt is cancelled when it runs out.
    """
    started = clock()
    attempt = 1
    last: StorybenchPromptsError | None = None
    max_attempts = attempts_allowed(policy.max_attempts)
    guard: AbstractContextManager[object] = contextlib.nullcontext()
    while True:
        remaining = policy.deadline - (clock() - started)
        failure: StorybenchPromptsError | None = None
        attempt_started = clock()
        with guard, anyio.move_on_after(max(0.0, remaining)):
            try:
                result = await call()
            except StorybenchPromptsError as exc:
                failure = exc
            else:
                attempt_ended(None, clock() - attempt_started)
                return result
        if failure is None:
            # Only the deadline's cancellation leaves the scope without a result or an error.
            failure = DirectusTimeoutError(
                f"{what} did not finish within the {policy.deadline:g} s retry deadline "
                f"(attempt {attempt})"
            )
            failure.__cause__ = last
            attempt_ended(failure, clock() - attempt_started)
            raise failure
        attempt_ended(failure, clock() - attempt_started)
        last = failure
        if policy.is_retryable(failure):
            # The cache learns of the failure now, not after every retry has run.
            attempt_failed(failure)
        if attempt >= max_attempts or not policy.is_retryable(failure):
            raise failure
        wait = policy.wait_before(attempt, failure, rand)
        if clock() - started + wait > policy.deadline:
            raise failure
        if on_retry is not None:
            on_retry(attempt, failure, wait)
        await sleep(wait)
        allowed = retry_guard()
        if allowed is None:
            raise failure  # the caller says not now (Directus is known to be failing)
        guard = allowed
        attempt += 1
