"""How a retrying call tells its caller about each failed attempt, without a new parameter.

The cache runs each Directus fetch in a single flight and must learn of the *first* failed
attempt (to serve a copy at once) while the same fetch goes on retrying, and must be able to
ask for a single attempt (a recovery probe). Sources keep the one-method repository interface;
the flight sets these context variables for the fetch it runs, and the retry loop reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["attempt_failed", "attempts_allowed", "observing_attempts"]

_on_failed: ContextVar[Callable[[BaseException], None] | None] = ContextVar(
    "storybench_prompts_on_failed_attempt", default=None
)
_max_attempts: ContextVar[int | None] = ContextVar("storybench_prompts_max_attempts", default=None)


@contextmanager
def observing_attempts(
    on_failed: Callable[[BaseException], None], *, max_attempts: int | None = None
) -> Iterator[None]:
    """Inside the block, every failed attempt that will be retried is reported to
    ``on_failed``; ``max_attempts`` caps the attempts the retry policy would make."""
    failed_token = _on_failed.set(on_failed)
    max_token = _max_attempts.set(max_attempts)
    try:
        yield
    finally:
        _max_attempts.reset(max_token)
        _on_failed.reset(failed_token)


def attempt_failed(exc: BaseException) -> None:
    """Called by a retry loop for each failed attempt it would retry."""
    callback = _on_failed.get()
    if callback is not None:
        callback(exc)


def attempts_allowed(policy_max: int) -> int:
    """The attempts a retry loop may make: its policy's, or fewer when the caller asks."""
    cap = _max_attempts.get()
    return policy_max if cap is None else max(1, min(policy_max, cap))
