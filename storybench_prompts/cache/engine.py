"""The caching read-through repository: where cache, origin (Directus) and mirror meet.

One class serves every content kind (prompt sets, evaluation sets); ``build_repository()``
composes one per kind. Decision table for ``get(version)`` / ``latest()``
(``docs/architecture.md`` explains it):

=================================  ==========================================================
state                              the caller gets
=================================  ==========================================================
fresh cache entry                  the entry, no I/O (``source="cache"``)
Directus said "no such version"    ``PromptSetNotFoundError`` (a fresh one each time), no
(within ``not_found_ttl``)         origin call, nothing stale or mirrored is served
expired, within ``max_stale``      the entry at once (``stale=True``); one background refresh
Directus known to be failing       a copy at once (cache, any age, else the mirror), marked
                                   with the failure; one probe at a time checks for recovery
miss / too stale                   one shared origin fetch (single-flight); the result
first attempt fails (refused,      a copy at once (cache, else mirror) while the same fetch
reset, 5xx, 429)                   goes on retrying in the background
origin slower than                 whichever answers first of the origin and the mirror
``fallback_after``                 (``hedged=True`` when it is the mirror)
origin fails in the end            the cached copy (up to ``stale_if_error``), else the mirror
                                   copy, else ``PromptSetUnavailableError`` with every cause
=================================  ==========================================================

Two guards keep what is served from going back: a copy from the mirror never replaces a newer
cached entry, and ``latest()`` never serves a lower version than it served before unless
Directus itself said so; a version Directus withdrew (not found when asked, or above the
latest it reports) is dropped from the cache and marked withdrawn in the mirror, which then
never serves it again.

A fresh origin result is written to the mirror in the background only when its hash differs
from what the mirror holds; a slow or broken mirror never delays or fails the caller, and no
failure of a background write reaches the caller or the task group.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, cast

import anyio
from anyio.abc import TaskGroup
from cachetools import TLRUCache, TTLCache

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
from .._exceptions import (
    ContentChangedError,
    InvalidPromptSetError,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
    SourceUnavailableError,
    StorybenchPromptsError,
)
from ..content.kinds import PROMPT_SETS, ContentKind
from ..content.models import EvaluationSet, Provenance, VersionedContent, VersionInfo
from ..mirrors.memory import InMemoryMirror
from ..ops.sync import SyncResult, sync_versions
from ..sources.attempts import observing_attempts
from ..sources.base import PromptMirror, PromptRepository
from .outage import OriginHealth, OriginState, OriginStatus, ProbeSchedule, Stats
from .singleflight import Flight, SingleFlight

if TYPE_CHECKING:
    from ..sources.realtime import ChannelStatus

__all__ = [
    "DEFAULT_FALLBACK_AFTER",
    "DEFAULT_LATEST_TTL",
    "DEFAULT_MAX_STALE",
    "DEFAULT_NOT_FOUND_TTL",
    "DEFAULT_PINNED_TTL",
    "CachePolicy",
    "CachingRepository",
    "Drift",
]

logger = logging.getLogger(__name__)


LATEST = "latest"
Key = int | str  # a version number, or LATEST

C = TypeVar("C", bound=VersionedContent)


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


class ChangeFeed(Protocol):
    """What the repository needs of a realtime channel (``_realtime.RealtimeChannel``)."""

    @property
    def status(self) -> ChannelStatus: ...

    async def run(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Drift:
    """A version whose content changed in Directus under the same version number."""

    kind: str
    version: int
    old_hash: str
    new_hash: str
    at: float
    """Wall-clock seconds when it was noticed."""


class _Entry(Generic[C]):
    """A cached set: the object handed out on fresh hits, and its deadlines (clock seconds)."""

    __slots__ = ("fresh_until", "from_origin", "invalidated", "keep_until", "served", "stale_until")

    def __init__(
        self,
        content: C,
        *,
        fresh_until: float,
        stale_until: float,
        keep_until: float,
        from_origin: bool,
    ) -> None:
        provenance = content.provenance
        # Built once at insertion so a fresh hit allocates nothing.
        self.served: C = content.with_provenance(
            Provenance(
                source="cache",
                origin=provenance.origin if provenance else "directus",
                fetched_at_epoch=provenance.fetched_at_epoch if provenance else time.time(),
            )
        )
        self.fresh_until = fresh_until
        self.stale_until = stale_until
        self.keep_until = keep_until
        self.from_origin = from_origin
        self.invalidated = False

    @property
    def fetched_at(self) -> float:
        assert self.served.provenance is not None
        return self.served.provenance.fetched_at_epoch

    def invalidate(self) -> None:
        """Directus changed: never served as fresh again (the hit path checks only
        ``fresh_until``); still a copy to serve if the refetch fails."""
        self.invalidated = True
        self.fresh_until = float("-inf")

    def stale_copy(self, origin_error: str | None = None) -> C:
        assert self.served.provenance is not None
        return self.served.with_provenance(
            self.served.provenance.model_copy(update={"stale": True, "origin_error": origin_error})
        )


def _entry_expiry(_key: Hashable, entry: _Entry[Any], _now: float) -> float:
    return entry.keep_until


def _fresh_error(exc: PromptSetNotFoundError) -> PromptSetNotFoundError:
    # Each caller gets its own exception: re-raising one stored instance grows its traceback
    # with every raise, without bound.
    clone = copy.copy(exc)
    clone.__traceback__ = None
    clone.__cause__ = clone.__context__ = None
    return clone


def _newer(candidate: VersionedContent, than: VersionedContent) -> bool:
    """Whether ``candidate`` should be preferred to ``than`` for the same key."""
    if candidate.version != than.version:
        return candidate.version > than.version
    a, b = candidate.provenance, than.provenance
    return a is not None and b is not None and a.fetched_at_epoch > b.fetched_at_epoch


class CachingRepository(Generic[C]):
    """Cache in front of an origin (Directus), backed by an optional mirror.

    Use as an async context manager: background refreshes and write-through run in its task
    group, and leaving the block cancels them cleanly. ``clock`` is monotonic seconds and
    ``sleep`` waits in the same seconds (tests pass a fake pair, so timing rules are exact).
    ``evaluations`` is the repository of the second content kind, opened and closed with this
    one; ``health`` and ``probes`` are shared between them (one Directus behind both).
    ``channel`` is a realtime feed of Directus's changes: this repository runs it in its task
    group (wire its callbacks to :meth:`content_changed`), and while it is open entries that no
    change has touched stay current past their TTL.
    """

    def __init__(
        self,
        origin: PromptRepository[C],
        mirror: PromptMirror[C] | None = None,
        *,
        policy: CachePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
        kind: ContentKind[C] | None = None,
        evaluations: CachingRepository[EvaluationSet] | None = None,
        channel: ChangeFeed | None = None,
        health: OriginHealth | None = None,
        probes: ProbeSchedule | None = None,
        close_origin: bool = True,
        close_mirror: bool = True,
    ) -> None:
        self.origin = origin
        self.mirror = mirror
        self.kind: ContentKind[C] = kind or getattr(origin, "kind", None) or cast(Any, PROMPT_SETS)
        self.policy = policy or CachePolicy()
        self.evaluations = evaluations
        self._clock = clock
        self._sleep = sleep
        self._cache: TLRUCache[Key, _Entry[C]] = TLRUCache(
            maxsize=self.policy.maxsize, ttu=_entry_expiry, timer=clock
        )
        # Bounded, so a benchmark config full of typos cannot grow it without limit.
        self._not_found: TTLCache[Key, PromptSetNotFoundError] = TTLCache(
            maxsize=1024, ttl=self.policy.not_found_ttl, timer=clock
        )
        self._mirror_hashes: dict[int, str] = {}
        self._flights: SingleFlight[Key, C] = SingleFlight()
        self._mirror_reads: SingleFlight[Key, C] = SingleFlight()
        self._stats = Stats()
        self._health = health or OriginHealth(getattr(origin, "name", type(origin).__name__))
        self._probes = probes or ProbeSchedule(
            clock, initial=self.policy.probe_initial, maximum=self.policy.probe_max, rand=rand
        )
        # What Directus last said is the latest version (None: not asked yet). Mirror copies
        # above it are withdrawn versions and are not served for "latest".
        self._directus_latest: int | None = None
        # The highest set latest() has served (held here, not only in the evictable cache):
        # latest() never serves a lower version unless Directus itself says so.
        self._latest_best: C | None = None
        # Versions Directus said it no longer publishes (bounded, oldest forgotten first):
        # never served from the mirror, even if marking them withdrawn there failed.
        self._withdrawn_versions: dict[int, None] = {}
        self._withdrawal_checked_for: int | None = None
        self._drifts: list[Drift] = []
        self._channel = channel
        # Bumped by every change Directus reports; a fetch that began before the last change
        # may hold the old content, so what it brings is stored as needing a fetch again.
        self._change_generation = 0
        self._task_group: TaskGroup | None = None
        # Mirror writes in progress; leaving ``async with`` lets them finish (bounded).
        self._writes_pending = 0
        self._writes_drained = anyio.Event()
        self._close_origin = close_origin
        self._close_mirror = close_mirror
        self._closed = False

    def __repr__(self) -> str:
        return f"CachingRepository(origin={self.origin!r}, mirror={self.mirror!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._closed or self._task_group is not None:
            raise RuntimeError("a CachingRepository is entered once; build a new one to reopen")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        if self._channel is not None and self._owns_channel():
            self._task_group.start_soon(self._channel.run, name="realtime channel")
        if self.evaluations is not None:
            try:
                await self.evaluations.__aenter__()
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        try:
            await self._drain_writes()
            if self.evaluations is not None:
                await self.evaluations.__aexit__(None, None, None)
        finally:
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
            if self.evaluations is not None:
                await self.evaluations.aclose()
            if self._close_origin:
                await self.origin.aclose()
            if self.mirror is not None and self._close_mirror:
                await self.mirror.aclose()

    async def _drain_writes(self) -> None:
        """Give mirror writes in progress up to ``mirror_timeout`` to land: a process that
        fetched fresh content (a CLI ``get``) should leave it in the mirror."""
        if self._writes_pending:
            with anyio.CancelScope(shield=True):
                await self._first_of(self._writes_drained, timeout=self.policy.mirror_timeout)

    def _owns_channel(self) -> bool:
        # The repository of the other kind reads the same channel's status; one runs it.
        return self.evaluations is not None or self.kind is PROMPT_SETS

    def _pushed(self) -> bool:
        """Whether Directus's changes to this kind arrive as they happen."""
        channel = self._channel
        if channel is None:
            return False
        status = channel.status
        if status.state != "open":
            return False
        return not set(status.unsubscribed) & set(self.kind.related_collections)

    def _tg(self) -> TaskGroup:
        if self._task_group is None:
            raise RuntimeError(
                "CachingRepository must be used as `async with repository:` "
                "(it runs background refreshes in its own task group)"
            )
        return self._task_group

    # -- reading ---------------------------------------------------------------------------

    async def get(self, version: int, *, expect_hash: str | None = None) -> C:
        """The published set with this version number.

        ``expect_hash``: the ``config_hash`` a run recorded; :class:`ContentChangedError` if
        the version now holds other content (``get_by_hash`` still returns the old one).
        """
        # The hit path: subscripting is several times cheaper than Cache.get() in cachetools.
        try:
            entry = self._cache[version]
        except KeyError:
            return self._expected(await self._slow_get(version, None), expect_hash)
        if self._clock() < entry.fresh_until:
            self._stats.hits += 1
            if expect_hash is None:
                return entry.served
            return self._expected(entry.served, expect_hash)
        return self._expected(await self._slow_get(version, entry), expect_hash)

    def _expected(self, served: C, expect_hash: str | None) -> C:
        if expect_hash is not None and served.config_hash != expect_hash:
            raise ContentChangedError(
                f"{self.kind.noun} version {served.version} now holds {served.config_hash}, "
                f"not the expected {expect_hash}",
                version=served.version,
                expected=expect_hash,
                actual=served.config_hash,
            )
        return served

    async def latest(self) -> C:
        """The published set with the highest version number."""
        try:
            entry = self._cache[LATEST]
        except KeyError:
            return await self._slow_get(LATEST, None)
        if self._clock() < entry.fresh_until:
            self._stats.hits += 1
            return entry.served
        return await self._slow_get(LATEST, entry)

    async def get_by_hash(self, config_hash: str) -> C:
        """Exactly the content a run recorded by its ``config_hash``, from cache or mirror,
        even after the version was edited or withdrawn in Directus."""
        for entry in list(self._cache.values()):
            if entry.served.config_hash == config_hash:
                self._stats.hits += 1
                return entry.served
        if self.mirror is None:
            raise PromptSetNotFoundError(f"no mirror to look up {self.kind.noun} {config_hash}")
        mirror = self.mirror
        found: C = await self._bounded(
            lambda: mirror.get_by_hash(config_hash), f"looking up {config_hash}"
        )
        return found

    async def versions(self) -> list[VersionInfo]:
        """Published versions from the origin; from the mirror when the origin cannot answer
        (at once while Directus is known to be failing)."""
        probe = False
        if self._failing():
            if not self._probes.take():
                held = await self._mirror_versions() if self.mirror is not None else []
                if held:
                    return held
                raise PromptSetUnavailableError(
                    f"no source could list {self.kind.noun} versions: Directus has been "
                    f"failing and the mirror {'is empty' if self.mirror else 'is not configured'}",
                    causes=[
                        self._health.last_exception
                        or SourceUnavailableError(self._health.status.last_error or "failing")
                    ],
                )
            probe = True
        try:
            with observing_attempts(self._attempt_failed, max_attempts=1 if probe else None):
                listed = await self.origin.versions()
        except SourceUnavailableError as exc:
            self._origin_failed(exc)
            if self.mirror is None:
                raise
            try:
                held = await self._mirror_versions()
            except StorybenchPromptsError as mirror_exc:
                raise PromptSetUnavailableError(
                    "no source could list versions", causes=[exc, mirror_exc]
                ) from exc
            if not held:
                raise PromptSetUnavailableError(
                    f"no source could list {self.kind.noun} versions (the mirror is empty)",
                    causes=[exc],
                ) from exc
            return held
        finally:
            if probe:
                self._probes.release()
        self._origin_answered()
        return listed

    async def _mirror_versions(self) -> list[VersionInfo]:
        mirror = self.mirror
        assert mirror is not None
        listed: list[VersionInfo] = await self._bounded(mirror.versions, "listing versions")
        return listed

    async def _slow_get(self, key: Key, entry: _Entry[C] | None) -> C:
        # Checking emptiness first keeps the common miss cheap (cachetools .get() is not).
        negative = self._not_found.get(key) if self._not_found else None
        if negative is not None:
            self._stats.not_found_hits += 1
            raise _fresh_error(negative)
        now = self._clock()
        if entry is not None and not entry.invalidated:
            if entry.from_origin and self._pushed():
                # Realtime is up: an entry no change event has touched is still current.
                self._stats.hits += 1
                return entry.served
            if now < entry.stale_until:
                self._stats.stale_serves += 1
                self._refresh_in_background(key)
                return entry.stale_copy()
        probe = False
        if self._failing():
            misses: list[BaseException] = []
            copy = await self._serve_during_outage(key, entry, misses)
            if copy is not None:
                return copy
            if not self._flights.in_flight(key):
                # Nobody has a copy: only a due probe may ask Directus, so many missing keys
                # cannot storm a server known to be down.
                if not self._probes.take():
                    raise self._known_outage_error(key, misses)
                probe = True
                self._stats.probes += 1
        self._stats.misses += 1
        flight = self._flights.join(
            key, lambda f: self._fetch_origin(f, key, probe=probe), self._tg()
        )
        return await self._await_fetch(key, flight)

    def _known_outage_error(
        self, key: Key, misses: list[BaseException]
    ) -> PromptSetUnavailableError:
        status = self._health.status
        wait = max(0.0, self._probes.due_at - self._clock())
        what = (
            f"the latest {self.kind.noun}" if key == LATEST else f"{self.kind.noun} version {key}"
        )
        cause = self._health.last_exception or SourceUnavailableError(
            status.last_error or "Directus is failing"
        )
        return PromptSetUnavailableError(
            f"{what} could not be served: no copy in cache or mirror, and Directus has been "
            f"failing ({status.last_error_kind}); it is asked again in {wait:.1f} s",
            causes=[cause, *misses],
        )

    async def _await_fetch(self, key: Key, flight: Flight[C]) -> C:
        if not flight.done.is_set():
            if self.mirror is not None or key in self._cache:
                first = await self._first_of(
                    flight.done, flight.attempt_failed, timeout=self.policy.fallback_after
                )
                if first is flight.attempt_failed and not flight.done.is_set():
                    # Directus refused the first attempt: serve a copy now; the flight retries.
                    error = flight.attempt_error
                    copy = await self._failover_copy(key, type(error).__name__ if error else None)
                    if copy is not None:
                        return copy
                elif first is None and self.mirror is not None:
                    hedged = await self._hedge(key, flight)
                    if hedged is not None:
                        return hedged
            await flight.done.wait()
        if flight.error is None:
            return flight.result()
        return await self._serve_after_error(key, flight.error)

    async def _first_of(self, *events: anyio.Event, timeout: float) -> anyio.Event | None:  # noqa: ASYNC109 (the injected sleep times it)
        """The first of ``events`` to be set, or None when ``timeout`` passes first."""
        for event in events:
            if event.is_set():
                return event
        winner: list[anyio.Event] = []
        async with anyio.create_task_group() as tg:

            async def watch(event: anyio.Event) -> None:
                await event.wait()
                winner.append(event)
                tg.cancel_scope.cancel()

            async def timer() -> None:
                await self._sleep(timeout)
                tg.cancel_scope.cancel()

            for event in events:
                tg.start_soon(watch, event)
            tg.start_soon(timer)
        return winner[0] if winner else None

    async def _hedge(self, key: Key, flight: Flight[C]) -> C | None:
        """The origin is slow: whichever of the origin and the mirror answers first."""
        mirror_flight = self._mirror_reads.join(key, self._mirror_read_call(key), self._tg())
        await self._first_of(flight.done, mirror_flight.done, timeout=float("inf"))
        if flight.done.is_set() and flight.error is None:
            return None  # the origin won; the caller takes its result
        if not mirror_flight.done.is_set():
            return None  # the origin failed first; the error path reads the mirror
        outcome = self._mirror_outcome(mirror_flight)
        if not isinstance(outcome, VersionedContent):
            return None
        copy = self._servable_mirror_copy(key, outcome)
        if copy is None:
            return None
        self._stats.hedged_serves += 1
        assert copy.provenance is not None
        return copy.with_provenance(copy.provenance.model_copy(update={"hedged": True}))

    async def _failover_copy(
        self, key: Key, kind: str | None, misses: list[BaseException] | None = None
    ) -> C | None:
        """A copy to serve because Directus failed (``kind`` of failure): the cache (any age),
        else the mirror. Why the mirror had none is added to ``misses``."""
        entry = self._cache.get(key)
        if entry is not None:
            self._stats.failovers += 1
            return entry.stale_copy(origin_error=kind)
        outcome = await self._read_mirror(key)
        if isinstance(outcome, VersionedContent):
            copy = self._servable_mirror_copy(key, outcome)
            if copy is not None:
                self._stats.failovers += 1
                self._store_fallback(key, copy)
                assert copy.provenance is not None
                return copy.with_provenance(
                    copy.provenance.model_copy(update={"origin_error": kind})
                )
            outcome = PromptSetNotFoundError(f"the mirror's copy of {key} was withdrawn")
        if misses is not None:
            misses.append(outcome)
        return None

    async def _serve_during_outage(
        self, key: Key, entry: _Entry[C] | None, misses: list[BaseException]
    ) -> C | None:
        """Directus is known to be failing: a copy at once, and a probe only when one is due."""
        status = self._health.status
        copy = await self._failover_copy(key, status.last_error_kind, misses)
        if copy is not None and not self._flights.in_flight(key) and self._probes.take():
            self._stats.probes += 1
            self._flights.join(key, lambda f: self._fetch_origin(f, key, probe=True), self._tg())
        return copy

    async def _serve_after_error(self, key: Key, error: BaseException) -> C:
        if isinstance(error, PromptSetNotFoundError):
            raise _fresh_error(error)
        entry = self._cache.get(key)
        if entry is not None:
            self._stats.stale_serves += 1
            return entry.stale_copy(origin_error=type(error).__name__)
        causes: list[BaseException] = [error]
        copy = await self._read_mirror(key)
        if isinstance(copy, VersionedContent):
            servable = self._servable_mirror_copy(key, copy)
            if servable is not None:
                self._stats.mirror_fallbacks += 1
                self._store_fallback(key, servable)
                assert servable.provenance is not None
                return servable.with_provenance(
                    servable.provenance.model_copy(update={"origin_error": type(error).__name__})
                )
            copy = PromptSetNotFoundError(f"the mirror's copy of {key} was withdrawn")
        causes.append(copy)
        what = (
            f"the latest {self.kind.noun}" if key == LATEST else f"{self.kind.noun} version {key}"
        )
        raise PromptSetUnavailableError(f"{what} could not be served", causes=causes) from error

    # -- the mirror ------------------------------------------------------------------------

    def _servable_mirror_copy(self, key: Key, copy: C) -> C | None:
        """The mirror's copy, unless something better or more current says otherwise."""
        above_latest = (
            key == LATEST
            and self._directus_latest is not None
            and copy.version > self._directus_latest
        )
        if copy.version in self._withdrawn_versions or above_latest:
            if above_latest and self._directus_latest is not None:
                # Directus's latest is lower: the mirror has not caught up with a withdrawal.
                self._withdraw_above_in_background(self._directus_latest)
            return self._best_latest_copy() if key == LATEST else None
        if key == LATEST:
            best = self._latest_best
            if best is not None and copy.version < best.version:
                # latest() never goes back in time unless Directus says so.
                return self._best_latest_copy()
        current = self._cache.get(key)
        if current is not None and _newer(current.served, copy):
            # A newer answer landed while the mirror was being read.
            return current.stale_copy()
        if key == LATEST and (
            self._latest_best is None or copy.version >= self._latest_best.version
        ):
            self._latest_best = copy
        return copy

    def _best_latest_copy(self) -> C | None:
        """The highest set latest() served, as a stale copy, if it may still be served."""
        best = self._latest_best
        if best is None or best.version in self._withdrawn_versions:
            return None
        if self._directus_latest is not None and best.version > self._directus_latest:
            return None
        provenance = best.provenance
        assert provenance is not None
        return best.with_provenance(
            provenance.model_copy(update={"source": "cache", "stale": True, "hedged": False})
        )

    def _remember_withdrawn(self, versions: Iterable[int]) -> None:
        for version in versions:
            self._withdrawn_versions.pop(version, None)
            self._withdrawn_versions[version] = None
        while len(self._withdrawn_versions) > 4096:
            del self._withdrawn_versions[next(iter(self._withdrawn_versions))]

    def _mirror_read_call(self, key: Key) -> Callable[[Flight[C]], Awaitable[C]]:
        mirror = self.mirror
        assert mirror is not None

        async def read(_flight: Flight[C]) -> C:
            copy: C = await self._bounded(
                (lambda: mirror.latest()) if key == LATEST else (lambda: mirror.get(int(key))),
                f"reading {key}",
            )
            self._mirror_hashes[copy.version] = copy.config_hash
            return copy

        return read

    async def _read_mirror(self, key: Key) -> C | StorybenchPromptsError:
        """The mirror's copy, or the error that stopped it (bounded by ``mirror_timeout``).

        Shared like origin fetches: a thousand callers hedging or falling back at once make
        one mirror read, not a thousand.
        """
        if self.mirror is None:
            return SourceUnavailableError("no mirror configured")
        flight = self._mirror_reads.join(key, self._mirror_read_call(key), self._tg())
        await flight.done.wait()
        return self._mirror_outcome(flight)

    def _mirror_outcome(self, flight: Flight[C]) -> C | StorybenchPromptsError:
        if flight.error is None:
            return flight.result()
        if isinstance(flight.error, StorybenchPromptsError):
            return flight.error
        return SourceUnavailableError(f"the mirror read failed: {flight.error!r}")

    async def _bounded(self, call: Callable[[], Awaitable[Any]], what: str) -> Any:
        """A mirror call that gives up after ``mirror_timeout`` (measured by the injected sleep)."""
        assert self.mirror is not None
        result: list[Any] = []
        errors: list[Exception] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                try:
                    result.append(await call())
                except Exception as exc:  # raised below, not as an ExceptionGroup
                    errors.append(exc)
                tg.cancel_scope.cancel()

            async def timer() -> None:
                await self._sleep(self.policy.mirror_timeout)
                tg.cancel_scope.cancel()

            tg.start_soon(run)
            tg.start_soon(timer)
        if errors:
            raise errors[0]
        if not result:
            raise SourceUnavailableError(
                f"the {self.mirror.name} mirror did not answer {what} "
                f"within {self.policy.mirror_timeout:g} s"
            )
        return result[0]

    # -- the origin ------------------------------------------------------------------------

    def _failing(self) -> bool:
        return self._health.status.state is OriginState.INTERRUPTED

    def _refresh_in_background(self, key: Key) -> None:
        if self._flights.in_flight(key):
            return
        probe = False
        if self._failing():
            # No refresh storm during an outage: only a due probe goes to Directus.
            if not self._probes.take():
                return
            probe = True
            self._stats.probes += 1
        self._stats.background_refreshes += 1
        self._flights.join(key, lambda f: self._fetch_origin(f, key, probe=probe), self._tg())

    def _attempt_failed(self, exc: BaseException) -> None:
        self._origin_failed(exc)

    def _origin_failed(self, exc: BaseException) -> None:
        self._health.failed(exc)
        self._probes.failed()

    def _origin_answered(self) -> None:
        self._health.succeeded()
        self._probes.succeeded()

    async def _fetch_origin(self, flight: Flight[C], key: Key, *, probe: bool = False) -> C:
        generation = self._change_generation
        started = self._clock()
        self._stats.origin_requests += 1

        def on_failed(exc: BaseException) -> None:
            flight.report_failed_attempt(exc)
            self._attempt_failed(exc)

        try:
            # A probe is one attempt: many callers during an outage cost one request each time.
            with observing_attempts(on_failed, max_attempts=1 if probe else None):
                if key == LATEST:
                    content = await self.origin.latest()
                else:
                    content = await self.origin.get(int(key))
        except PromptSetNotFoundError as exc:
            self._origin_answered()
            self._on_not_found(key, exc)
            raise
        except (SourceUnavailableError, InvalidPromptSetError) as exc:
            self._stats.origin_errors[type(exc).__name__] += 1
            self._origin_failed(exc)
            raise
        finally:
            if probe:
                self._probes.release()
        if content.provenance is None:
            content = content.with_provenance(
                Provenance(source="directus", origin="directus", fetched_at_epoch=time.time())
            )
        now = self._clock()
        latency = now - started
        self._stats.origin_latency_total += latency
        self._stats.origin_latency_max = max(self._stats.origin_latency_max, latency)
        self._stats.origin_latency_last = latency
        self._origin_answered()
        self._not_found.pop(key, None)
        self._not_found.pop(content.version, None)
        self._withdrawn_versions.pop(content.version, None)  # published (again)
        self._notice_drift(content)
        if key == LATEST:
            self._directus_latest = content.version
            self._latest_best = content
            self._store(LATEST, content, fresh_for=self.policy.latest_ttl, now=now)
            if self._withdrawal_checked_for != content.version:
                self._withdrawal_checked_for = content.version
                self._withdraw_above_in_background(content.version)
        self._store(content.version, content, fresh_for=self.policy.pinned_ttl, now=now)
        self._write_through(content)
        if generation != self._change_generation:
            self._refetch_after(flight, key, content.version)
        return content

    def _refetch_after(self, flight: Flight[C], key: Key, version: int) -> None:
        """A change arrived while this fetch ran: fetch again once it has landed."""
        for stored in (key, version):
            entry = self._cache.get(stored)
            if entry is not None:
                entry.invalidate()
        if self._task_group is None:
            return

        async def again() -> None:
            await flight.done.wait()
            self._refresh_in_background(key)

        self._task_group.start_soon(again)

    def _notice_drift(self, content: C) -> None:
        entry = self._cache.get(content.version)
        previous = entry.served.config_hash if entry is not None and entry.from_origin else None
        previous = previous or self._mirror_hashes.get(content.version)
        if previous is None or previous == content.config_hash:
            return
        drift = Drift(self.kind.name, content.version, previous, content.config_hash, time.time())
        if any(d.version == drift.version and d.new_hash == drift.new_hash for d in self._drifts):
            return
        self._drifts.append(drift)
        del self._drifts[:-100]
        self._stats.drifts += 1
        logger.warning(
            "%s version %d changed in Directus under the same version number: %s -> %s",
            self.kind.noun,
            content.version,
            previous,
            content.config_hash,
        )

    def drifts(self) -> list[Drift]:
        """Versions whose content changed under the same number (the last hundred)."""
        return list(self._drifts)

    def _on_not_found(self, key: Key, exc: PromptSetNotFoundError) -> None:
        """Directus answered that this is not published: forget it and never serve it."""
        self._not_found[key] = exc
        if key == LATEST:
            self._cache.pop(LATEST, None)
            self._directus_latest = -1
            self._latest_best = None
            self._withdraw_above_in_background(-1)
            return
        version = int(key)
        self._remember_withdrawn([version])
        self._cache.pop(version, None)
        latest = self._cache.get(LATEST)
        if latest is not None and latest.served.version == version:
            self._cache.pop(LATEST, None)
        if self._latest_best is not None and self._latest_best.version == version:
            self._latest_best = None
        self._withdraw_in_background([version])

    def _withdraw_above_in_background(self, latest: int) -> None:
        """Directus says ``latest`` is the highest published version: higher ones are gone."""
        above = [k for k in list(self._cache.keys()) if isinstance(k, int) and k > latest]
        self._remember_withdrawn(above)
        for key in above:
            self._cache.pop(key, None)
            self._not_found[key] = PromptSetNotFoundError(
                f"{self.kind.noun} version {key} is no longer published (Directus's latest "
                f"is {latest})",
                version=key,
            )
        if self.mirror is None or self._task_group is None:
            return
        mirror = self.mirror

        async def withdraw_above() -> None:
            try:
                stored = await mirror.versions()
            except Exception as exc:
                logger.warning("could not list the %s mirror to withdraw: %s", mirror.name, exc)
                return
            gone = [i.version for i in stored if i.version > latest]
            self._remember_withdrawn(gone)
            await self._withdraw(gone)

        self._task_group.start_soon(withdraw_above)

    def _withdraw_in_background(self, versions: list[int]) -> None:
        if self.mirror is not None and self._task_group is not None and versions:
            self._task_group.start_soon(self._withdraw, versions)

    async def _withdraw(self, versions: list[int]) -> None:
        assert self.mirror is not None
        for version in versions:
            try:
                changed = await self.mirror.withdraw(version)
            except Exception as exc:  # a background write must never reach the task group
                self._stats.mirror_write_errors += 1
                logger.warning(
                    "could not mark %s version %d withdrawn in the %s mirror: %s",
                    self.kind.noun,
                    version,
                    self.mirror.name,
                    exc,
                )
                continue
            self._mirror_hashes.pop(version, None)
            if changed:
                self._stats.withdrawals += 1
                logger.info(
                    "%s version %d is no longer published; marked withdrawn in the %s mirror",
                    self.kind.noun,
                    version,
                    self.mirror.name,
                )

    def _store(self, key: Key, content: C, *, fresh_for: float, now: float) -> None:
        fresh_until = now + fresh_for
        self._cache[key] = _Entry(
            content,
            fresh_until=fresh_until,
            stale_until=fresh_until + self.policy.max_stale,
            keep_until=fresh_until + max(self.policy.max_stale, self.policy.stale_if_error),
            from_origin=content.provenance is None or content.provenance.source == "directus",
        )

    def _store_fallback(self, key: Key, copy: C) -> None:
        # Reuse a copy served because the origin failed for a short while, unless the cache
        # already holds something newer (a fetch that landed meanwhile).
        current = self._cache.get(key)
        if current is not None and not _newer(copy, current.served):
            return
        self._store(key, copy, fresh_for=self.policy.fallback_ttl, now=self._clock())

    def _write_through(self, content: C) -> None:
        if self.mirror is None or self._task_group is None:
            return
        if self._mirror_hashes.get(content.version) == content.config_hash:
            return
        self._task_group.start_soon(self._save_to_mirror, content)

    async def _save_to_mirror(self, content: C) -> None:
        self._writes_pending += 1
        try:
            await self._save_to_mirror_now(content)
        finally:
            self._writes_pending -= 1
            if not self._writes_pending:
                self._writes_drained.set()
                self._writes_drained = anyio.Event()

    async def _save_to_mirror_now(self, content: C) -> None:
        assert self.mirror is not None
        try:
            outcome = await self.mirror.save(content)
        except Exception as exc:  # whatever its type: logged and counted, never raised
            self._stats.mirror_write_errors += 1
            logger.warning(
                "could not write %s version %d to the %s mirror: %s",
                self.kind.noun,
                content.version,
                self.mirror.name,
                exc,
            )
            return
        self._mirror_hashes[content.version] = content.config_hash
        if outcome != "unchanged":
            self._stats.mirror_writes += 1

    # -- operations ------------------------------------------------------------------------

    async def warm(self, versions: Iterable[int] | None = None) -> list[SyncResult]:
        """Load versions (default: every published one) into the cache and the mirror.

        Runs ``policy.warm_concurrency`` fetches at a time; returns what happened per version
        (without a mirror, the outcomes describe the cache: ``new`` means loaded). A mirror
        with no active set ends with the highest version warmed active.
        """

        def remember(result: SyncResult) -> None:
            if result.prompt_set is not None:
                content = cast(C, result.prompt_set)
                self._notice_drift(content)
                # Fresh from when this version arrived, not from when the warm began.
                self._store(
                    result.version, content, fresh_for=self.policy.pinned_ttl, now=self._clock()
                )
                if result.config_hash:
                    self._mirror_hashes[result.version] = result.config_hash

        return await sync_versions(
            self.origin,
            self.mirror if self.mirror is not None else InMemoryMirror(kind=self.kind),
            versions,
            concurrency=self.policy.warm_concurrency,
            activate_if_none=True,
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

    def refresh_all(self) -> None:
        """The content may have changed in Directus: no cached entry is served as fresh until
        fetched again, and each is fetched again now, in the background."""
        self._change_generation += 1
        self._not_found.clear()
        for key, entry in list(self._cache.items()):
            entry.invalidate()
            self._refresh_in_background(key)

    def content_changed(self, collection: str | None = None) -> None:
        """A change in a Directus collection (None: anything may have changed)."""
        if collection is None or collection in self.kind.related_collections:
            self.refresh_all()
        if self.evaluations is not None:
            self.evaluations.content_changed(collection)

    def attach_channel(self, channel: ChangeFeed) -> None:
        """Use ``channel`` (for this kind and the other), before ``async with``."""
        if self._task_group is not None:
            raise RuntimeError("attach the realtime channel before entering the repository")
        self._channel = channel
        if self.evaluations is not None:
            self.evaluations.attach_channel(channel)

    def channel_status(self) -> ChannelStatus | None:
        """The realtime channel's state, or None when there is none."""
        return self._channel.status if self._channel is not None else None

    def _channel_description(self) -> dict[str, Any] | None:
        status = self.channel_status()
        if status is None:
            return None
        return {
            "state": str(status.state),
            "since": status.since,
            "reconnects": status.reconnects,
            "events": status.events,
            "last_error": status.last_error,
            "unsubscribed": list(status.unsubscribed),
            "current": self._pushed(),
        }

    def stats(self) -> Stats:
        return self._stats.copy()

    def status(self) -> OriginStatus:
        return self._health.status

    def describe(self) -> dict[str, Any]:
        """Status and counters as plain data (for logs, JSON and the CLI)."""
        status = self._health.status
        out: dict[str, Any] = {
            "kind": self.kind.name,
            "origin": getattr(self.origin, "name", type(self.origin).__name__),
            "mirror": self.mirror.name if self.mirror else None,
            "state": status.state.value,
            "since": status.since,
            "last_error": status.last_error,
            "last_error_kind": status.last_error_kind,
            "cached_entries": len(self._cache),
            "realtime": self._channel_description(),
            "stats": self._stats.as_dict(),
        }
        if self.evaluations is not None:
            out["evaluations"] = self.evaluations.describe()
        return out
