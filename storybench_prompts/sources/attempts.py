"""How a retrying call tells its caller about each attempt, without a new parameter.

The cache runs each Directus fetch in a single flight and must learn of the *first* failed
attempt (to serve a copy at once) while the same fetch goes on retrying; it must be able to ask
for a single attempt (a recovery probe), to stop retries once Directus is known to be failing
(a retry then goes only as the one due probe), and to time each attempt (events). Sources keep
the one-method repository interface; the flight sets one context variable for the fetch it
runs, and the retry loop reads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "AttemptObserver",
    "attempt_ended",
    "attempt_failed",
    "attempts_allowed",
    "observing_attempts",
    "retry_guard",
]

RetryGuard = Callable[[], AbstractContextManager[object] | None]


@dataclass(frozen=True, slots=True)
class AttemptObserver:
    on_failed: Callable[[BaseException], None] | None = None
    """Each failed attempt the policy would retry (the last one too)."""
    on_attempt: Callable[[BaseException | None, float], None] | None = None
    """Every attempt once it ends: its error (None: it answered) and its seconds."""
    guard: RetryGuard | None = None
    """Asked before each retry: a context manager to run the retry in, or None to stop."""
    max_attempts: int | None = None


_observer: ContextVar[AttemptObserver | None] = ContextVar(
    "storybench_prompts_attempt_observer", default=None
)


@contextmanager
def observing_attempts(
    on_failed: Callable[[BaseException], None] | None = None,
    *,
    max_attempts: int | None = None,
    on_attempt: Callable[[BaseException | None, float], None] | None = None,
    guard: RetryGuard | None = None,
) -> Iterator[None]:
    """Inside the block, retry loops report to these callbacks; ``max_attempts`` caps the
    attempts the policy would make."""
    token = _observer.set(AttemptObserver(on_failed, on_attempt, guard, max_attempts))
    try:
        yield
    finally:
        _observer.reset(token)


def attempt_failed(exc: BaseException) -> None:
    """Called by a retry loop for each failed attempt it would retry."""
    observer = _observer.get()
    if observer is not None and observer.on_failed is not None:
        observer.on_failed(exc)


def attempt_ended(exc: BaseException | None, seconds: float) -> None:
    """Called by a retry loop when each attempt ends."""
    observer = _observer.get()
    if observer is not None and observer.on_attempt is not None:
        observer.on_attempt(exc, seconds)


def retry_guard() -> AbstractContextManager[object] | None:
    """What a retry runs in (None: do not retry)."""
    observer = _observer.get()
    if observer is None or observer.guard is None:
        return contextlib.nullcontext()
    return observer.guard()


def attempts_allowed(policy_max: int) -> int:
    """The attempts a retry loop may make: its policy's, or fewer when the caller asks."""
    observer = _observer.get()
    cap = observer.max_attempts if observer is not None else None
    return policy_max if cap is None else max(1, min(policy_max, cap))
