"""The cache's side of its mirror: shared reads bounded in time, and writes in the background.

Reads are single-flight per key (a thousand callers hedging or failing over at once make one
mirror read) and bounded by ``mirror_timeout``, so a slow mirror never holds a caller longer.
Writes (a fresh set whose hash differs from the mirror's, a withdrawal) run in the stack's task
group; a failure of any type is logged, counted (a ``MirrorWritten`` event) and never raised.
A write is pending from the moment it is asked for, not from when its task starts: leaving the
repository runs every pending write that has not started (its task may have been cancelled
before it ran, as ``asyncio.run`` does to every task left at exit) and gives those under way up
to ``mirror_timeout`` in all to land. Writes are idempotent, so one cut short is done again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from .._events import Event, MirrorWritten
from .._exceptions import SourceUnavailableError, StorybenchPromptsError
from .._logs import fields, get_logger
from ..content.kinds import ContentKind
from ..content.models import VersionedContent, VersionInfo
from ..mirrors.base import PromptMirror
from .entries import Key, version_of
from .singleflight import Flight, SingleFlight
from .timing import Sleep, bounded

__all__ = ["MirrorIO"]

logger = get_logger("storybench_prompts.cache")

C = TypeVar("C", bound=VersionedContent)
T = TypeVar("T")


class MirrorIO(Generic[C]):
    def __init__(
        self,
        mirror: PromptMirror[C],
        *,
        kind: ContentKind[C],
        timeout: float,
        sleep: Sleep,
        emit: Callable[[Event], None],
    ) -> None:
        self.mirror = mirror
        self._kind = kind
        self._timeout = timeout
        self._sleep = sleep
        self._emit = emit
        self.hashes: dict[int, str] = {}
        """The ``config_hash`` the mirror holds per version, as far as this process knows."""
        self._reads: SingleFlight[Key, C] = SingleFlight()
        # Writes asked for and not started yet, by what they do (a second ask is the same write).
        self._waiting: dict[tuple[Any, ...], Callable[[], Awaitable[None]]] = {}
        self._running = 0
        self._idle = anyio.Event()

    # -- reading ---------------------------------------------------------------------------

    async def bounded(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """A mirror call that gives up after ``mirror_timeout`` (measured by the injected sleep)."""
        result = await bounded(call, self._timeout, self._sleep)
        if not result:
            raise SourceUnavailableError(
                f"the {self.mirror.name} mirror did not answer {what} within {self._timeout:g} s"
            )
        return result[0]

    def join_read(self, key: Key, task_group: TaskGroup) -> Flight[C]:
        """The shared read of ``key`` (the running one, or a new one)."""
        mirror = self.mirror

        number = version_of(key)

        async def read(_flight: Flight[C]) -> C:
            copy: C = await self.bounded(
                (lambda: mirror.latest()) if number is None else (lambda: mirror.get(number)),
                f"reading {key}",
            )
            self.hashes[copy.version] = copy.config_hash
            return copy

        return self._reads.join(key, read, task_group)

    async def read(self, key: Key, task_group: TaskGroup) -> C | StorybenchPromptsError:
        """The mirror's copy, or the error that stopped it."""
        flight = self.join_read(key, task_group)
        await flight.done.wait()
        return self.outcome(flight)

    @staticmethod
    def outcome(flight: Flight[C]) -> C | StorybenchPromptsError:
        if flight.error is None:
            return flight.result()
        if isinstance(flight.error, StorybenchPromptsError):
            return flight.error
        return SourceUnavailableError(f"the mirror read failed: {flight.error!r}")

    async def versions(self) -> list[VersionInfo]:
        return await self.bounded(self.mirror.versions, "listing versions")

    async def get_by_hash(self, config_hash: str) -> C:
        mirror = self.mirror

        async def look_up() -> C:
            return await mirror.get_by_hash(config_hash)

        return await self.bounded(look_up, f"looking up {config_hash}")

    # -- writing ---------------------------------------------------------------------------

    def save_behind(self, content: C, task_group: TaskGroup | None) -> None:
        """Write a fresh set to the mirror in the background, when its hash is new there."""
        if self.hashes.get(content.version) == content.config_hash:
            return
        self._behind(
            ("save", content.version, content.config_hash), task_group, self._save, content
        )

    def withdraw_behind(self, versions: Iterable[int], task_group: TaskGroup | None) -> None:
        versions = list(versions)
        if versions:
            self._behind(("withdraw", *versions), task_group, self.withdraw, versions)

    def withdraw_above_behind(
        self, latest: int, task_group: TaskGroup | None, remember: Callable[[list[int]], None]
    ) -> None:
        """Directus says ``latest`` is the highest published version: mark the mirror's higher
        ones withdrawn (``remember`` is told which, first)."""

        async def withdraw_above() -> None:
            try:
                stored = await self.mirror.versions()
            except Exception as exc:
                logger.warning(
                    "could not list the %s mirror to withdraw: %s",
                    self.mirror.name,
                    exc,
                    extra=fields(kind=self._kind.name, source=self.mirror.name, error=exc),
                )
                return
            gone = [i.version for i in stored if i.version > latest]
            remember(gone)
            await self.withdraw(gone)

        self._behind(("withdraw above", latest), task_group, withdraw_above)

    def _behind(
        self,
        job: tuple[Any, ...],
        task_group: TaskGroup | None,
        work: Callable[..., Awaitable[None]],
        *args: Any,
    ) -> None:
        if task_group is None or job in self._waiting:
            return
        self._waiting[job] = lambda: work(*args)
        task_group.start_soon(self._run, job)

    async def _run(self, job: tuple[Any, ...]) -> None:
        work = self._waiting.pop(job, None)
        if work is None:
            return  # the drain ran it already
        self._running += 1
        try:
            await work()
        except BaseException:
            self._waiting.setdefault(job, work)  # cut short (cancelled): the drain does it again
            raise
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()
                self._idle = anyio.Event()

    async def _save(self, content: C) -> None:
        try:
            outcome = await self.mirror.save(content)
        except Exception as exc:  # whatever its type: logged and counted, never raised
            self._emit(
                MirrorWritten(self._kind.name, content.version, "save", "error", type(exc).__name__)
            )
            logger.warning(
                "could not write %s version %d to the %s mirror: %s",
                self._kind.noun,
                content.version,
                self.mirror.name,
                exc,
                extra=fields(
                    kind=self._kind.name,
                    version=content.version,
                    source=self.mirror.name,
                    error=exc,
                ),
            )
            return
        self.hashes[content.version] = content.config_hash
        self._emit(MirrorWritten(self._kind.name, content.version, "save", outcome))

    async def withdraw(self, versions: Iterable[int]) -> None:
        for version in versions:
            try:
                changed = await self.mirror.withdraw(version)
            except Exception as exc:  # a background write must never reach the task group
                self._emit(
                    MirrorWritten(self._kind.name, version, "withdraw", "error", type(exc).__name__)
                )
                logger.warning(
                    "could not mark %s version %d withdrawn in the %s mirror: %s",
                    self._kind.noun,
                    version,
                    self.mirror.name,
                    exc,
                    extra=fields(
                        kind=self._kind.name, version=version, source=self.mirror.name, error=exc
                    ),
                )
                continue
            self.hashes.pop(version, None)
            if changed:
                self._emit(MirrorWritten(self._kind.name, version, "withdraw", "withdrawn"))
                logger.info(
                    "%s version %d is no longer published; marked withdrawn in the %s mirror",
                    self._kind.noun,
                    version,
                    self.mirror.name,
                    extra=fields(kind=self._kind.name, version=version, source=self.mirror.name),
                )

    async def drain(self) -> None:
        """Let pending writes land, within ``mirror_timeout`` in all: a process that fetched
        fresh content (a CLI ``get``, a script's one drop-in call) leaves it in the mirror."""
        if not self._waiting and not self._running:
            return
        with anyio.CancelScope(shield=True):
            await bounded(self._drain, self._timeout, self._sleep)

    async def _drain(self) -> None:
        while self._waiting or self._running:
            if self._waiting:
                _job, work = self._waiting.popitem()
                await work()
            else:
                await self._idle.wait()
