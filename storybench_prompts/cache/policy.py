"""The cache's timing rules as one value object (``docs/configuration.md`` lists each)."""

from __future__ import annotations

from dataclasses import dataclass

from .._defaults import (
    DEFAULT_FALLBACK_AFTER,
    DEFAULT_FALLBACK_TTL,
    DEFAULT_LATEST_TTL,
    DEFAULT_MAX_STALE,
    DEFAULT_MAXSIZE,
    DEFAULT_MIRROR_TIMEOUT,
    DEFAULT_NOT_FOUND_TTL,
    DEFAULT_PINNED_TTL,
    DEFAULT_PROBE_INITIAL,
    DEFAULT_PROBE_MAX,
    DEFAULT_STALE_IF_ERROR,
    DEFAULT_SYNC_CONCURRENCY,
)

__all__ = ["CachePolicy"]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Timing rules, in seconds. Every rule reads the injected clock and waits with the
    injected sleep (see :class:`CachingRepository`), never ``time`` or the event loop directly.

    ``pinned_ttl``: how long a set asked for by number is fresh. ``latest_ttl``: how long the
    answer to "which set is latest" is fresh. ``max_stale``: how long past its TTL an entry is
    still served at once while a background refresh runs. ``stale_if_error``: how long an entry
    is kept to serve when the origin fails. ``not_found_ttl``: how long "no such version" is
    remembered. ``fallback_after``: how long a caller waits for the origin before it also asks
    the mirror. ``fallback_ttl``: how long a copy served because the origin failed is reused
    before the origin is tried again. ``mirror_timeout``: the most a caller waits for the mirror.
    ``probe_initial``/``probe_max``: the spacing of recovery probes while Directus is failing.
    """

    pinned_ttl: float = DEFAULT_PINNED_TTL
    latest_ttl: float = DEFAULT_LATEST_TTL
    max_stale: float = DEFAULT_MAX_STALE
    stale_if_error: float = DEFAULT_STALE_IF_ERROR
    not_found_ttl: float = DEFAULT_NOT_FOUND_TTL
    fallback_after: float = DEFAULT_FALLBACK_AFTER
    fallback_ttl: float = DEFAULT_FALLBACK_TTL
    mirror_timeout: float = DEFAULT_MIRROR_TIMEOUT
    maxsize: int = DEFAULT_MAXSIZE
    warm_concurrency: int = DEFAULT_SYNC_CONCURRENCY
    probe_initial: float = DEFAULT_PROBE_INITIAL
    probe_max: float = DEFAULT_PROBE_MAX
