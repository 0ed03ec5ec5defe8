"""The caching read-through repository: where cache, origin (Directus) and mirror meet.

``get``/``latest`` serve a fresh entry at once (the hit path); anything else goes through the
read path (``read_path.py``, which asks ``decision.py`` what to do). ``pieces.assemble``
composes the pieces the engine holds, each of which owns its state: ``EntryTable`` (entries,
"not found" and refused answers),
``OriginFetches`` (fetches and what their answers do), ``Copies`` (where a copy comes from),
``WithdrawalLedger``, ``MirrorIO``, ``ChangeTracker``, ``DriftLog``, and the ``Stack`` it
shares with the other kind (outage gate, realtime channel, hooks, lifecycle). The decision
table and the picture are in ``docs/architecture.md``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import anyio

from .._events import ContentChanged, Event, Hook, OriginStatus
from .._exceptions import ConfigurationError, ContentChangedError, PromptSetNotFoundError
from ..content.kinds import ContentKind
from ..content.models import EvaluationSet, VersionedContent, VersionInfo
from ..mirrors.base import PromptMirror
from ..mirrors.memory import InMemoryMirror
from ..ops.sync import SyncResult
from ..sources.base import PromptRepository
from .changes import ChangeFeed
from .drift import Drift
from .entries import LATEST
from .listeners import Listener
from .listing import list_versions
from .pieces import assemble
from .policy import CachePolicy
from .stack import Stack
from .stats import HitReporter, Stats

if TYPE_CHECKING:
    from ..sources.realtime import ChannelStatus
    from .pinned import PinnedRun

__all__ = ["CachingRepository"]

C = TypeVar("C", bound=VersionedContent)


def _kind_of(
    kind: ContentKind[C] | None, origin: PromptRepository[C], mirror: PromptMirror[C] | None
) -> ContentKind[C]:
    """The kind named by the caller, the origin or the mirror; they must agree, and one must
    say it (no kind is assumed)."""
    named: list[ContentKind[C]] = [
        k for k in (kind, getattr(origin, "kind", None), getattr(mirror, "kind", None)) if k
    ]
    if not named:
        raise TypeError(
            "CachingRepository needs its content kind: pass kind=PROMPT_SETS or "
            "kind=EVALUATION_SETS (an origin or mirror with a .kind attribute also says it)"
        )
    differing = sorted({k.name for k in named})
    if len(differing) > 1:
        raise ConfigurationError(
            f"the origin, mirror and kind= name different content kinds: {', '.join(differing)}"
        )
    return named[0]


class CachingRepository(Generic[C]):
    """Cache in front of an origin (Directus), backed by an optional mirror.

    Use as an async context manager: background refreshes and mirror writes run in the stack's
    task group, and leaving the block cancels them cleanly. ``clock`` is monotonic seconds and
    ``sleep`` waits in the same seconds (tests pass a fake pair, so timing rules are exact).
    ``stack`` is what this repository shares with the other kind's (``build_repository()``
    makes one; ``evaluations=`` joins that repository's); without it the repository has a
    stack of its own. ``channel`` is a realtime feed of Directus's changes: the stack runs it
    and routes its changes to every repository of the stack, and while it is open entries
    that no change has touched stay current past their TTL. ``hooks`` receive every event
    (see ``_events``).
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
        stack: Stack | None = None,
        evaluations: CachingRepository[EvaluationSet] | None = None,
        channel: ChangeFeed | None = None,
        hooks: Iterable[Hook] = (),
        close_origin: bool = True,
        close_mirror: bool = True,
    ) -> None:
        self.origin = origin
        self.mirror = mirror
        self.kind: ContentKind[C] = _kind_of(kind, origin, mirror)
        self.policy = policy = policy or CachePolicy()
        self.evaluations: CachingRepository[EvaluationSet] | None = evaluations
        """The other kind's repository of the same stack (set by ``build_repository()``)."""
        if stack is None and evaluations is not None:
            stack = evaluations.stack  # composed by hand: join the other kind's stack
        if stack is None:
            name = getattr(origin, "name", type(origin).__name__)
            stack = Stack.for_origin(name, policy=policy, clock=clock, rand=rand, hooks=hooks)
        else:
            for hook in hooks:
                stack.hooks.add(hook)
        if channel is not None:
            stack.attach_channel(channel)
        self._stack = stack
        self._gate = stack.gate
        self._clock = clock
        pieces = assemble(
            origin,
            mirror,
            kind=self.kind,
            policy=policy,
            clock=clock,
            sleep=sleep,
            rand=rand,
            stack=stack,
            emit=self._emit,
        )
        self._stats = pieces.stats
        self._entries = pieces.entries
        self._cache = self._entries.entries  # the hit path reads it directly
        self._changes = pieces.changes
        self._mirror_io = pieces.mirror_io
        self._drift = pieces.drift
        self._fetches = pieces.origin
        self._read = pieces.read
        self._rounds = pieces.rounds
        count_hits = stack.hit_counter(self.kind.name)
        if count_hits is not None:
            # A hook counts hits itself (OpenTelemetry): each call reports the hits it made,
            # and the hit path stays what it is without one.
            reporter = HitReporter(self._stats, count_hits)
            self.get = reporter.wrap(self.get)  # type: ignore[method-assign]
            self.latest = reporter.wrap(self.latest)  # type: ignore[method-assign]
            self.get_by_hash = reporter.wrap(self.get_by_hash)  # type: ignore[method-assign]
        closing: list[Any] = [origin] if close_origin else []
        if mirror is not None and close_mirror:
            closing.append(mirror)
        stack.add(self, closing)

    def __repr__(self) -> str:
        return f"CachingRepository(origin={self.origin!r}, mirror={self.mirror!r})"

    @property
    def stack(self) -> Stack:
        """What this repository shares with the other kind's (gate, channel, lifecycle)."""
        return self._stack

    def _emit(self, event: Event) -> None:
        self._stats(event)
        self._stack.emit(event)

    # -- lifecycle: the stack's ------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._stack.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Cancel background work and close the origins and mirrors the stack owns."""
        await self._stack.aclose()

    async def drain(self) -> None:
        """Let mirror writes in progress land (bounded by ``mirror_timeout``)."""
        if self._mirror_io is not None:
            await self._mirror_io.drain()

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
            # Checked on a miss only (the hit path stays a subscript): 1.5 and "1" are never
            # keys, and True is 1 as everywhere in Python.
            if type(version) is not int and type(version) is not bool:
                raise TypeError(f"a version is an int, not {version!r}") from None
            return self._expected(await self._read.lookup(version, None), expect_hash)
        if self._clock() < entry.fresh_until:
            self._stats.hits += 1
            if expect_hash is None:
                return entry.served
            return self._expected(entry.served, expect_hash)
        return self._expected(await self._read.lookup(version, entry), expect_hash)

    async def latest(self) -> C:
        """The published set with the highest version number."""
        try:
            entry = self._cache[LATEST]
        except KeyError:
            return await self._read.lookup(LATEST, None)
        if self._clock() < entry.fresh_until:
            self._stats.hits += 1
            return entry.served
        return await self._read.lookup(LATEST, entry)

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

    async def get_by_hash(self, config_hash: str) -> C:
        """Exactly the content a run recorded by its ``config_hash``, from cache or mirror,
        even after the version was edited or withdrawn in Directus."""
        for entry in list(self._cache.values()):
            if entry.served.config_hash == config_hash:
                self._stats.hits += 1
                return entry.served
        if self._mirror_io is None:
            raise PromptSetNotFoundError(f"no mirror to look up {self.kind.noun} {config_hash}")
        return await self._mirror_io.get_by_hash(config_hash)

    def peek(self, version: int | None = None) -> C | None:
        """What the cache holds for ``version`` (None: the latest), whatever its age, or None.
        No I/O, not counted as a hit: for observers such as a pinned run."""
        entry = self._entries.get(LATEST if version is None else version)
        return entry.served if entry is not None else None

    def pinned(self) -> PinnedRun[C]:
        """A pinned run: ``async with repo.pinned() as run:`` serves one content throughout
        (``run.latest()``, ``run.get(v)``, ``run.evaluations``) and records what changed in
        Directus meanwhile in ``run.drifts`` (see ``cache.pinned``)."""
        from .pinned import PinnedRun

        return PinnedRun(self)

    async def versions(self) -> list[VersionInfo]:
        """Published versions from the origin; from the mirror when the origin cannot answer
        (at once while Directus is known to be failing)."""
        return await list_versions(self.origin, self._gate, self._mirror_io, self.kind)

    # -- operations ------------------------------------------------------------------------

    async def warm(self, versions: Iterable[int] | None = None) -> list[SyncResult]:
        """Load versions (default: every published one) into the cache and the mirror.

        Runs ``policy.warm_concurrency`` fetches at a time; returns what happened per version
        (without a mirror, the outcomes describe the cache: ``new`` means loaded). A mirror
        with no active set ends with the highest version warmed active.
        """
        mirror = self.mirror if self.mirror is not None else InMemoryMirror(kind=self.kind)
        return await self._fetches.warm(versions, mirror)

    def invalidate(self, version: int | None = None) -> None:
        """Forget one version (and "latest", which may point at it), or everything."""
        if version is None:
            self._entries.clear()
            return
        self._entries.pop(version)
        self._entries.pop(LATEST)
        self._entries.forget_not_found(version, LATEST)
        self._entries.forget_refused(version, LATEST)

    def refresh_all(self) -> None:
        """The content may have changed in Directus: no cached entry is served as fresh until
        fetched again, and each is fetched again now (in one revalidation round)."""
        self.changed(None, "update", None)

    def changed(
        self, collection: str | None, event: str, rows: list[Mapping[str, Any]] | None
    ) -> None:
        """Directus reports a change (``rows`` None: anything of this kind may have changed):
        the entries it touches are served marked stale until the next round refetches them."""
        self._rounds.changed(collection, event, rows)

    def connected(self) -> None:
        """The realtime channel is (again) subscribed: entries fetched before are checked in
        one round, after a random part of the reconnect spread; they are served meanwhile."""
        self._rounds.connected()

    def content_changed(self, collection: str | None = None) -> None:
        """A change in a Directus collection (None: anything may have changed); every
        repository of the stack whose kind reads that collection refreshes."""
        self._stack.content_changed(collection)

    def attach_channel(self, channel: ChangeFeed) -> None:
        """Use ``channel`` (for every kind of the stack), before ``async with``."""
        self._stack.attach_channel(channel)

    def channel_status(self) -> ChannelStatus | None:
        """The realtime channel's state, or None when there is none."""
        return self._stack.channel_status()

    def drifts(self) -> list[Drift]:
        """Versions whose content changed under the same number (the last hundred)."""
        return self._drift.list()

    def stats(self) -> Stats:
        return self._stats.copy()

    def status(self) -> OriginStatus:
        return self._gate.status

    def on_status_change(self, callback: Listener[OriginStatus]) -> Callable[[], None]:
        """Call ``callback`` (plain or async) with the new ``OriginStatus`` once per change of
        Directus's state; shared by the stack's repositories. Returns the unsubscribe."""
        return self._stack.on_status_change(callback)

    def on_content_change(self, callback: Listener[ContentChanged]) -> Callable[[], None]:
        """Call ``callback`` (plain or async) with the ``ContentChanged`` (version, old and
        new ``config_hash``, via) of each version of this kind whose content changed, once
        per change. Returns the unsubscribe."""
        return self._stack.on_content_change(callback, kind=self.kind.name)

    def describe(self) -> dict[str, Any]:
        """Status and counters as plain data (for logs, JSON and the CLI)."""
        status = self._gate.status
        out: dict[str, Any] = {
            "kind": self.kind.name,
            "origin": getattr(self.origin, "name", type(self.origin).__name__),
            "mirror": self.mirror.name if self.mirror else None,
            "state": status.state.value,
            "since": status.since,
            "last_error": status.last_error,
            "last_error_kind": status.last_error_kind,
            "cached_entries": len(self._entries),
            "realtime": self._stack.describe_channel(current=self._changes.pushed()),
            "stats": self._stats.as_dict(),
        }
        if self.evaluations is not None:
            out["evaluations"] = self.evaluations.describe()
        return out
