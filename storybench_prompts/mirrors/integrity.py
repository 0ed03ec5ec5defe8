"""Every copy read from a mirror is re-hashed before it is served, exported or verified.

A mirror keeps each set with the ``config_hash`` it was saved under; what is read back must
hash to it, and to the hash asked for when it is looked up by hash. A copy that does not is
never served: :func:`checked` raises :class:`MirrorCorruptError` naming where the copy was, the
mismatch is counted (:func:`failures`) and logged once per location and hash, and the caller
tries its next tier (Directus, another mirror) or reports the copy missing.

The file mirror and the MongoDB mirror re-hash on decode (they rebuild the set from the stored
fields, so its hash is computed afresh) and report mismatches here; the in-memory mirror, the
export and ``verify`` call :func:`checked` on the object itself.
"""

from __future__ import annotations

import threading
from typing import TypeVar

from .._exceptions import MirrorCorruptError
from .._logs import get_logger
from ..content.models import VersionedContent, rehash

__all__ = ["checked", "failures", "mismatch", "warn_once"]

logger = get_logger("storybench_prompts.mirrors")

C = TypeVar("C", bound=VersionedContent)

_lock = threading.Lock()
_failures = 0
_logged: set[str] = set()
_LOGGED_MAX = 10_000


def failures() -> int:
    """Copies refused in this process because their content did not hash to their hash."""
    return _failures


def warn_once(key: str, message: str) -> None:
    """Log ``message`` at WARNING the first time ``key`` is seen in this process."""
    with _lock:
        if key in _logged:
            return
        if len(_logged) >= _LOGGED_MAX:
            _logged.clear()
        _logged.add(key)
    logger.warning("%s", message)


def mismatch(location: str, stored: object, actual: str, *, what: str = "") -> MirrorCorruptError:
    """Count a copy whose content hashes to ``actual``, not ``stored``, and log it once; the
    error to raise (never serve the copy)."""
    global _failures
    with _lock:
        _failures += 1
    message = (
        f"{what or location} was changed after it was written: stored hash {stored!r}, "
        f"content hash {actual!r}; it is not served"
    )
    warn_once(f"{location}\0{stored}\0{actual}", message)
    return MirrorCorruptError(message, location=location)


def checked(content: C, *, location: str, expected: str | None = None) -> C:
    """``content`` when it hashes, computed now, to its own ``config_hash`` and to
    ``expected``; else :class:`MirrorCorruptError` (counted, logged once)."""
    actual = rehash(content)
    stored = content.config_hash
    if actual != stored:
        raise mismatch(location, stored, actual)
    if expected is not None and actual != expected:
        raise mismatch(location, expected, actual)
    return content
