"""The caching read-through repository: where cache, origin (Directus) and mirror meet.

Decision table for ``get(version)`` / ``latest()`` (``docs/architecture.md`` explains it):

=================================  ==========================================================
state                              the caller gets
=================================  ==========================================================
fresh cache entry                  the entry, no I/O (``source="cache"``)
expired, within ``max_stale``      the entry at once (``stale=True``); one background refresh
known "not found" (negative)       ``PromptSetNotFoundError`` again, no origin call
miss / too stale                   one shared origin fetch (single-flight); the result
origin slower than                 the mirror copy at once (``hedged=True``) while the fetch
``fallback_after``, mirror has it  goes on and refreshes cache and mirror when it lands
origin fails (down, 5xx, 429,      the cached copy (any age up to ``stale_if_error``), else
timeout, auth, invalid content)    the mirror copy, else ``PromptSetUnavailableError`` with
                                   every cause
origin says "no such version"      ``PromptSetNotFoundError`` (cached ``not_found_ttl``)
=================================  ==========================================================

A fresh origin result is written to the mirror in the background only when its hash differs
from what the mirror holds; a slow or broken mirror never delays or fails the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup
from cachetools import TLRUCache, TTLCache

from ._exceptions import (
    InvalidPromptSetError,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
    SourceUnavailableError,
    StorybenchPromptsError,
)
from ._health import OriginHealth, OriginStatus, Stats
from ._memory import InMemoryMirror
from ._models import PromptSet, Provenance, VersionInfo
from ._repository import PromptMirror, PromptRepository
from ._singleflight import SingleFlight
from ._sync import DEFAULT_SYNC_CONCURRENCY, SyncResult, sync_versions

__all__ = [
    "DEFAULT_FALLBACK_AFTER",
    "DEFAULT_LATEST_TTL",
    "DEFAULT_MAX_STALE",
    "DEFAULT_NOT_FOUND_TTL",
    "DEFAULT_PINNED_TTL",
    "CachePolicy",
    "CachingRepository",
]

logger = logging.getLogger(__name__)

DEFAULT_PINNED_TTL = 3600.0
DEFAULT_LATEST_TTL = 60.0
DEFAULT_MAX_STALE = 3600.0
DEFAULT_STALE_IF_ERROR = 7 * 24 * 3600.0
DEFAULT_NOT_FOUND_TTL = 30.0
DEFAULT_FALLBACK_AFTER = 2.0
DEFAULT_FALLBACK_TTL = 10.0
DEFAULT_MIRROR_TIMEOUT = 3.0
DEFAULT_MAXSIZE = 512

LATEST = "latest"
Key = int | str  # a version number, or LATEST


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Timing rules, in seconds. Every rule reads the injected clock, never ``time`` directly.

    ``pinned_ttl``: how long a set asked for by number is fresh. ``latest_ttl``: how long the
    answer to "which set is latest" is fresh. ``max_stale``: how long past its TTL an entry is
    still served at once while a background refresh runs. ``stale_if_error``: how long an entry
    is kept to serve when the origin fails. ``not_found_ttl``: how long "no such version" is
    remembered. ``fallback_after``: how long a caller waits for the origin before taking the
    mirror copy. ``fallback_ttl``: how long a copy served because the origin failed is reused
    before the origin is tried again. ``mirror_timeout``: the most a caller waits for the mirror.
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


class _Entry:
    """A cached set: the object handed out on fresh hits, and its deadlines (clock seconds)."""

    __slots__ = ("fresh_until", "keep_until", "served", "stale_until")

    def __init__(
        self, prompt_set: PromptSet, fresh_until: float, stale_until: float, keep_until: float
    ) -> None:
        provenance = prompt_set.provenance
        # Built once at insertion so a fresh hit allocates nothing.
        self.served = prompt_set.with_provenance(
            Provenance(
                source="cache",
                origin=provenance.origin if provenance else "directus",
                fetched_at_epoch=provenance.fetched_at_epoch if provenance else time.time(),
            )
        )
        self.fresh_until = fresh_until
        self.stale_until = stale_until
        self.keep_until = keep_until

    def stale_copy(self) -> PromptSet:
        assert self.served.provenance is not None
        return self.served.with_provenance(
            self.served.provenance.model_copy(update={"stale": True})
        )


def _entry_expiry(_key: Hashable, entry: _Entry, _now: float) -> float:
    return entry.keep_until


class CachingRepository:
    """Cache in front of an origin (Directus), backed by an optional mirror.

    Use as an async context manager: background refreshes and write-through run in its task
    group, and leaving the block cancels them cleanly. ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        origin: PromptRepository,
        mirror: PromptMirror | None = None,
        *,
        policy: CachePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        close_origin: bool = True,
        close_mirror: bool = True,
    ) -> None:
        self.origin = origin
        self.mirror = mirror
        self.policy = policy or CachePolicy()
        self._clock = clock
        self._cache: TLRUCache[Key, _Entry] = TLRUCache(
            maxsize=self.policy.maxsize, ttu=_entry_expiry, timer=clock
        )
        # Bounded, so a benchmark config full of typos cannot grow it without limit.
        self._not_found: TTLCache[Key, PromptSetNotFoundError] = TTLCache(
            maxsize=1024, ttl=self.policy.not_found_ttl, timer=clock
        )
        self._mirror_hashes: dict[int, str] = {}
        self._flights: SingleFlight[Key, PromptSet] = SingleFlight()
        self._mirror_reads: SingleFlight[Key, PromptSet] = SingleFlight()
        self._stats = Stats()
        self._health = OriginHealth(getattr(origin, "name", type(origin).__name__))
        self._task_group: TaskGroup | None = None
        self._close_origin = close_origin
        self._close_mirror = close_mirror
        self._closed = False

    def __repr__(self) -> str:
        return f"CachingRepository(origin={self.origin!r}, mirror={self.mirror!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        try:
            if task_group is not None:
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
        finally:
            self._task_group = None
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel background work and close the origin and mirror (those this repository owns)."""
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self._close_origin:
                await self.origin.aclose()
            if self.mirror is not None and self._close_mirror:
                await self.mirror.aclose()

    def _tg(self) -> TaskGroup:
        if self._task_group is None:
            raise RuntimeError(
                "CachingRepository must be used as `async with repository:` "
                "(it runs background refreshes in its own task group)"
            )
        return self._task_group

    # -- reading ---------------------------------------------------------------------------

    async def get(self, version: int) -> PromptSet:
        # The hit path: subscripting is several times cheaper than Cache.get() in cachetools.
        try:
            entry = self._cache[version]
        except KeyError:
            return await self._slow_get(version, None)
        if self._clock() < entry.fresh_until:
            self._stats.hits += 1
            return entry.served
        return await self._slow_get(version, entry)

    async def latest(self) -> PromptSet:
        try:
            entry = self._cache[LATEST]
        except KeyError:
            return await self._slow_get(LATEST, None)
        if self._clock() < entry.fresh_until:
            self._stats.hits += 1
            return entry.served
        return await self._slow_get(LATEST, entry)

    async def versions(self) -> list[VersionInfo]:
        """Published versions from the origin; from the mirror when the origin cannot answer."""
        try:
            return await self.origin.versions()
        except SourceUnavailableError as exc:
            self._health.failed(exc)
            if self.mirror is None:
                raise
            try:
                return await self.mirror.versions()
            except StorybenchPromptsError as mirror_exc:
                raise PromptSetUnavailableError(
                    "no source could list versions", causes=[exc, mirror_exc]
                ) from exc

    async def _slow_get(self, key: Key, entry: _Entry | None) -> PromptSet:
        now = self._clock()
        if entry is not None and now < entry.stale_until:
            self._stats.stale_serves += 1
            self._refresh_in_background(key)
            return entry.stale_copy()
        # Checking emptiness first keeps the common miss cheap (cachetools .get() is not).
        negative = self._not_found.get(key) if self._not_found else None
        if negative is not None:
            self._stats.not_found_hits += 1
            raise negative
        self._stats.misses += 1
        flight = self._flights.join(key, lambda: self._fetch_origin(key), self._tg())
        if not flight.done.is_set() and self.mirror is not None:
            with anyio.move_on_after(self.policy.fallback_after):
                await flight.done.wait()
            if not flight.done.is_set():
                hedged = await self._hedge(key)
                if hedged is not None:
                    return hedged
        await flight.done.wait()
        if flight.error is None:
            return flight.result()
        return await self._serve_after_error(key, flight.error)

    async def _hedge(self, key: Key) -> PromptSet | None:
        """The origin is slow: the mirror copy if it has one (the fetch goes on regardless)."""
        copy = await self._read_mirror(key)
        if isinstance(copy, PromptSet):
            self._stats.hedged_serves += 1
            assert copy.provenance is not None
            return copy.with_provenance(copy.provenance.model_copy(update={"hedged": True}))
        return None

    async def _read_mirror(self, key: Key) -> PromptSet | StorybenchPromptsError:
        """The mirror's copy, or the error that stopped it (bounded by ``mirror_timeout``).

        Shared like origin fetches: a thousand callers hedging or falling back at once make
        one mirror read, not a thousand.
        """
        if self.mirror is None:
            return SourceUnavailableError("no mirror configured")
        flight = self._mirror_reads.join(key, lambda: self._read_mirror_once(key), self._tg())
        await flight.done.wait()
        if flight.error is None:
            return flight.result()
        if isinstance(flight.error, StorybenchPromptsError):
            return flight.error
        return SourceUnavailableError(f"the mirror read failed: {flight.error!r}")

    async def _read_mirror_once(self, key: Key) -> PromptSet:
        assert self.mirror is not None
        try:
            with anyio.fail_after(self.policy.mirror_timeout):
                if key == LATEST:
                    copy = await self.mirror.latest()
                else:
                    copy = await self.mirror.get(int(key))
        except TimeoutError:
            raise SourceUnavailableError(
                f"the {self.mirror.name} mirror did not answer within {self.policy.mirror_timeout:g} s"
            ) from None
        self._mirror_hashes[copy.version] = copy.config_hash
        return copy

    async def _serve_after_error(self, key: Key, error: BaseException) -> PromptSet:
        if isinstance(error, PromptSetNotFoundError):
            raise error
        entry = self._cache.get(key)
        if entry is not None:
            self._stats.stale_serves += 1
            return entry.stale_copy()
        causes: list[BaseException] = [error]
        copy = await self._read_mirror(key)
        if isinstance(copy, PromptSet):
            self._stats.mirror_fallbacks += 1
            now = self._clock()
            # Reuse this copy briefly so an outage does not cost every caller an origin try.
            self._store(key, copy, fresh_for=self.policy.fallback_ttl, now=now)
            return copy
        causes.append(copy)
        what = "the latest prompt set" if key == LATEST else f"prompt set version {key}"
        raise PromptSetUnavailableError(f"{what} could not be served", causes=causes) from error

    # -- the origin ------------------------------------------------------------------------

    def _refresh_in_background(self, key: Key) -> None:
        if not self._flights.in_flight(key):
            self._stats.background_refreshes += 1
        self._flights.join(key, lambda: self._fetch_origin(key), self._tg())

    async def _fetch_origin(self, key: Key) -> PromptSet:
        started = self._clock()
        self._stats.origin_requests += 1
        try:
            if key == LATEST:
                prompt_set = await self.origin.latest()
            else:
                prompt_set = await self.origin.get(int(key))
        except PromptSetNotFoundError as exc:
            self._health.succeeded()  # the origin answered
            self._not_found[key] = exc
            raise
        except (SourceUnavailableError, InvalidPromptSetError) as exc:
            self._stats.origin_errors[type(exc).__name__] += 1
            self._health.failed(exc)
            raise
        if prompt_set.provenance is None:
            prompt_set = prompt_set.with_provenance(
                Provenance(source="directus", origin="directus", fetched_at_epoch=time.time())
            )
        now = self._clock()
        latency = now - started
        self._stats.origin_latency_total += latency
        self._stats.origin_latency_max = max(self._stats.origin_latency_max, latency)
        self._stats.origin_latency_last = latency
        self._health.succeeded()
        self._not_found.pop(key, None)
        if key == LATEST:
            self._store(LATEST, prompt_set, fresh_for=self.policy.latest_ttl, now=now)
            self._not_found.pop(prompt_set.version, None)
        self._store(prompt_set.version, prompt_set, fresh_for=self.policy.pinned_ttl, now=now)
        self._write_through(prompt_set)
        return prompt_set

    def _store(self, key: Key, prompt_set: PromptSet, *, fresh_for: float, now: float) -> None:
        fresh_until = now + fresh_for
        self._cache[key] = _Entry(
            prompt_set,
            fresh_until=fresh_until,
            stale_until=fresh_until + self.policy.max_stale,
            keep_until=fresh_until + max(self.policy.max_stale, self.policy.stale_if_error),
        )

    def _write_through(self, prompt_set: PromptSet) -> None:
        if self.mirror is None or self._task_group is None:
            return
        if self._mirror_hashes.get(prompt_set.version) == prompt_set.config_hash:
            return
        self._task_group.start_soon(self._save_to_mirror, prompt_set)

    async def _save_to_mirror(self, prompt_set: PromptSet) -> None:
        assert self.mirror is not None
        try:
            outcome = await self.mirror.save(prompt_set)
        except StorybenchPromptsError as exc:
            self._stats.mirror_write_errors += 1
            logger.warning(
                "could not write version %d to the %s mirror: %s",
                prompt_set.version,
                self.mirror.name,
                exc,
            )
            return
        self._mirror_hashes[prompt_set.version] = prompt_set.config_hash
        if outcome != "unchanged":
            self._stats.mirror_writes += 1

    # -- operations ------------------------------------------------------------------------

    async def warm(self, versions: Iterable[int] | None = None) -> list[SyncResult]:
        """Load versions (default: every published one) into the cache and the mirror.

        Runs ``policy.warm_concurrency`` fetches at a time; returns what happened per version
        (without a mirror, the outcomes describe the cache: ``new`` means loaded).
        """

        def remember(result: SyncResult) -> None:
            if result.prompt_set is not None:
                # Fresh from when this version arrived, not from when the warm began.
                self._store(
                    result.version,
                    result.prompt_set,
                    fresh_for=self.policy.pinned_ttl,
                    now=self._clock(),
                )
                if result.config_hash:
                    self._mirror_hashes[result.version] = result.config_hash

        return await sync_versions(
            self.origin,
            self.mirror if self.mirror is not None else InMemoryMirror(),
            versions,
            concurrency=self.policy.warm_concurrency,
            on_result=remember,
        )

    def invalidate(self, version: int | None = None) -> None:
        """Forget one version (and "latest", which may point at it), or everything."""
        if version is None:
            self._cache.clear()
            self._not_found.clear()
            return
        self._cache.pop(version, None)
        self._cache.pop(LATEST, None)
        self._not_found.pop(version, None)
        self._not_found.pop(LATEST, None)

    def stats(self) -> Stats:
        return self._stats.copy()

    def status(self) -> OriginStatus:
        return self._health.status

    def describe(self) -> dict[str, Any]:
        """Status and counters as plain data (for logs, JSON and the CLI)."""
        status = self._health.status
        return {
            "origin": getattr(self.origin, "name", type(self.origin).__name__),
            "mirror": self.mirror.name if self.mirror else None,
            "state": status.state.value,
            "since": status.since,
            "last_error": status.last_error,
            "last_error_kind": status.last_error_kind,
            "cached_entries": len(self._cache),
            "stats": self._stats.as_dict(),
        }
