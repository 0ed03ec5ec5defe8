"""A pinned run: one benchmark run sees one content from start to end.

``async with repo.pinned() as run:`` opens it. ``run.latest()`` and ``run.evaluations.latest()``
resolve once and then return that same set (same ``config_hash``) for the rest of the run;
``run.get(v)`` returns version ``v`` as it was first seen in the run. What changes in Directus
meanwhile is never served into the run: the repository keeps serving the new content to
everyone else (and to the next run), and the run records each difference in :attr:`drifts`.

How a run notices: it listens to the repository's events (the stack's hooks). A
``ContentChanged`` event of a version the run read is recorded at once; after any fetch the
run compares, without I/O, what the cache now holds for "latest" and for each version it read
with what it pinned, so an edit seen through realtime and a newly published latest are both
recorded while the run is open. :meth:`PinnedRun.compare` asks the repository itself.
``run.lock()`` is the run's :class:`~storybench_prompts.ops.lock.Lock`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar

import anyio

from .._events import ContentChanged, Event, OriginFetched, Served
from .._exceptions import ConfigurationError, StorybenchPromptsError
from ..content.models import EvaluationSet, VersionedContent
from ..ops.lock import Lock, clean_url

if TYPE_CHECKING:
    from .engine import CachingRepository

__all__ = ["PinnedRun", "RunDrift"]

C = TypeVar("C", bound=VersionedContent)


@dataclass(frozen=True, slots=True)
class RunDrift:
    """Something that changed in Directus while a run was pinned, and was not served into it.

    ``change`` is ``edited`` (``version`` now holds ``new_hash`` instead of the ``old_hash`` the
    run read) or ``latest`` (the repository's latest is now ``version`` with ``new_hash``;
    the run keeps serving ``pinned_version`` with ``old_hash`` as its latest).
    """

    kind: str
    """The kind's name: ``prompts`` or ``evaluations``."""
    version: int
    old_hash: str
    new_hash: str
    change: Literal["edited", "latest"] = "edited"
    pinned_version: int = 0
    """The version the run serves in its place (``version`` itself for an edit)."""
    at: float = field(default_factory=time.time)
    """Wall-clock seconds when the run noticed it."""

    def __repr__(self) -> str:
        if self.change == "latest":
            return (
                f"RunDrift({self.kind} latest is now v{self.version} {self.new_hash}; "
                f"the run keeps v{self.pinned_version} {self.old_hash})"
            )
        return f"RunDrift({self.kind} v{self.version} {self.old_hash} -> {self.new_hash})"


class _Drifts:
    """The drifts of one run (both kinds), each recorded once."""

    def __init__(self) -> None:
        self.items: list[RunDrift] = []
        self._seen: set[tuple[str, int, str, str]] = set()

    def record(self, drift: RunDrift) -> RunDrift | None:
        key = (drift.kind, drift.version, drift.new_hash, drift.change)
        if key in self._seen:
            return None
        self._seen.add(key)
        self.items.append(drift)
        return drift


class PinnedRun(Generic[C]):
    """One run's view of a repository (see the module). Build it with ``repo.pinned()``."""

    def __init__(self, repository: CachingRepository[C], *, _drifts: _Drifts | None = None) -> None:
        self.repository = repository
        self.kind = repository.kind
        self._drifts = _drifts if _drifts is not None else _Drifts()
        self._versions: dict[int, C] = {}
        self._latest: C | None = None
        self._resolving = anyio.Lock()
        self._scheduled = False
        self._closed = False
        self._removers: list[Any] = []
        self._evaluations: PinnedRun[EvaluationSet] | None = None
        if _drifts is None and repository.evaluations is not None:
            self._evaluations = PinnedRun(repository.evaluations, _drifts=self._drifts)

    def __repr__(self) -> str:
        return (
            f"PinnedRun({self.kind.name}, latest={self._latest_label()}, drifts={len(self.drifts)})"
        )

    def _latest_label(self) -> str:
        return f"v{self._latest.version}" if self._latest is not None else "unresolved"

    @property
    def evaluations(self) -> PinnedRun[EvaluationSet]:
        """The same run for the evaluation criteria (its drifts are this run's)."""
        if self._evaluations is None:
            raise ConfigurationError(
                "this repository has no evaluations repository (build_repository() gives one)"
            )
        return self._evaluations

    def _runs(self) -> list[PinnedRun[Any]]:
        return [self] + ([self._evaluations] if self._evaluations is not None else [])

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stacks: list[Any] = []
        for run in self._runs():
            stack = run.repository.stack
            if all(stack is not s for s in stacks):
                stacks.append(stack)
                self._removers.append(stack.hooks.add(self._on_event))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening (leaving ``async with`` does it); what was pinned stays pinned, and
        the drifts are those noticed while the run was open."""
        self._observe()
        for run in self._runs():
            run._closed = True
        for remove in self._removers:
            remove()
        self._removers.clear()

    # -- reading ---------------------------------------------------------------------------

    async def latest(self) -> C:
        """The latest set as this run first resolved it (resolved once, then the same set)."""
        if self._latest is not None:
            return self._latest
        async with self._resolving:
            if self._latest is None:
                served = await self.repository.latest()
                self._latest = self._pin(served)
            return self._latest

    async def get(self, version: int) -> C:
        """Version ``version`` as it was first seen in this run."""
        pinned = self._versions.get(version)
        if pinned is not None:
            return pinned
        async with self._resolving:
            pinned = self._versions.get(version)
            if pinned is None:
                pinned = self._pin(await self.repository.get(version))
            return pinned

    def _pin(self, served: C) -> C:
        """The run's copy of ``served``'s version: the first one seen (a later, different one
        is a drift)."""
        first = self._versions.setdefault(served.version, served)
        if first.config_hash != served.config_hash:
            self._record_edit(served.version, first.config_hash, served.config_hash)
        return first

    # -- drift -----------------------------------------------------------------------------

    @property
    def drifts(self) -> list[RunDrift]:
        """What changed in Directus (for either kind) since the run read it, oldest first."""
        self._observe()
        return list(self._drifts.items)

    def _record_edit(self, version: int, old: str, new: str) -> None:
        self._drifts.record(RunDrift(self.kind.name, version, old, new, "edited", version))

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, ContentChanged | OriginFetched | Served):
            return
        for run in self._runs():
            if run.kind.name != event.kind:
                continue
            if isinstance(event, ContentChanged):
                pinned = run._versions.get(event.version)
                if pinned is not None and pinned.config_hash != event.new_hash:
                    run._record_edit(event.version, pinned.config_hash, event.new_hash)
            run._observe_soon()

    def _observe_soon(self) -> None:
        """Compare once the fetch that emitted the event has stored its answer (the event
        comes first), i.e. in a task of the stack's own."""
        if self._scheduled:
            return
        task_group = self.repository.stack.open_task_group
        if task_group is None:
            self._observe()
            return
        self._scheduled = True

        async def observe() -> None:
            self._scheduled = False
            self._observe()

        task_group.start_soon(observe)

    def _observe(self) -> None:
        """Compare what the repository's cache holds now with what this run pinned (no I/O)."""
        if self._closed:
            return
        for run in self._runs():
            run._compare_with(
                run.repository.peek(),
                {v: run.repository.peek(v) for v in run._versions},
            )

    def _compare_with(self, latest: C | None, versions: dict[int, C | None]) -> None:
        for version, now in versions.items():
            pinned = self._versions[version]
            if now is not None and now.config_hash != pinned.config_hash:
                self._record_edit(version, pinned.config_hash, now.config_hash)
        pinned_latest = self._latest
        if latest is None or pinned_latest is None:
            return
        if latest.version == pinned_latest.version:
            if latest.config_hash != pinned_latest.config_hash:
                self._record_edit(latest.version, pinned_latest.config_hash, latest.config_hash)
            return
        self._drifts.record(
            RunDrift(
                self.kind.name,
                latest.version,
                pinned_latest.config_hash,
                latest.config_hash,
                "latest",
                pinned_latest.version,
            )
        )

    async def compare(self) -> list[RunDrift]:
        """Ask the repository what it serves now (latest, and each version the run read, for
        both kinds) and record what differs from the run; returns the drifts so far."""
        for run in self._runs():
            latest: Any = None
            if run._latest is not None:
                try:
                    latest = await run.repository.latest()
                except StorybenchPromptsError:
                    latest = None
            versions: dict[int, Any] = {}
            for version in list(run._versions):
                try:
                    versions[version] = await run.repository.get(version)
                except StorybenchPromptsError:
                    versions[version] = None
            run._compare_with(latest, versions)
        return self.drifts

    # -- the lock --------------------------------------------------------------------------

    def _locked_content(self) -> C | None:
        if self._latest is not None:
            return self._latest
        if len(self._versions) == 1:
            return next(iter(self._versions.values()))
        if self._versions:
            raise RuntimeError(
                f"this run read {self.kind.noun} versions {sorted(self._versions)} and no latest: "
                "a lock names one (read it with run.latest() or lock just one version)"
            )
        return None

    def lock(self) -> Lock:
        """The run's lock: the prompt set it pinned (its latest, else the one version it read)
        and the evaluation set likewise, when it read one."""
        prompt_set = self._locked_content()
        if prompt_set is None:
            raise RuntimeError(
                f"this run has read no {self.kind.noun} yet: call run.latest() or run.get(v)"
            )
        evaluation_set = (
            self._evaluations._locked_content() if self._evaluations is not None else None
        )
        return Lock.from_sets(
            prompt_set,  # type: ignore[arg-type]
            evaluation_set,
            directus_url=_directus_url(self.repository),
        )


def _directus_url(repository: Any) -> str | None:
    url = getattr(repository.origin, "url", None)
    if not isinstance(url, str):
        return None
    try:
        return clean_url(url)
    except ValueError:
        return None
