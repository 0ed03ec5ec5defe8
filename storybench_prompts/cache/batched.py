"""A revalidation round's read: the versions it holds in one batched request per page.

Used when the origin reads many versions at once (``get_many``); otherwise each key is
refreshed on its own. During an outage the round goes only as the due probe, and a failure
returns its keys for the next round (the entries are served meanwhile). A local pool timeout
is not Directus failing (``outage.failure_class``). A version whose read may predate a change
that touches it is stored marked stale and returned for the next round.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from .._events import Event, OriginFetched
from .._exceptions import InvalidPromptSetError, PromptSetNotFoundError, StorybenchPromptsError
from ..content.kinds import ContentKind
from ..content.models import VersionedContent
from ..sources.attempts import observing_attempts
from ..sources.base import PromptRepository
from .answers import Answers
from .changes import ChangeTracker
from .entries import LATEST, EntryTable, Key
from .outage import OutageGate, failure_class
from .policy import CachePolicy

__all__ = ["BatchedReads"]

C = TypeVar("C", bound=VersionedContent)


class BatchedReads(Generic[C]):
    def __init__(
        self,
        origin: PromptRepository[C],
        *,
        kind: ContentKind[C],
        policy: CachePolicy,
        clock: Callable[[], float],
        entries: EntryTable[C],
        changes: ChangeTracker,
        gate: OutageGate,
        answers: Answers[C],
        refresh: Callable[..., None],
        emit: Callable[[Event], None],
    ) -> None:
        self._origin = origin
        self._kind = kind
        self._policy = policy
        self._clock = clock
        self._entries = entries
        self._changes = changes
        self._gate = gate
        self._answers = answers
        self._refresh = refresh
        self._emit = emit

    async def refetch(self, versions: set[int], latest_own: bool, follows: bool) -> set[Key]:
        """Fetch ``versions`` again in one batched read (when the origin has ``get_many``),
        and "latest" on its own (``latest_own``) or from its version's new content
        (``follows``). Returns the keys to try again (Directus failed, or a change raced)."""
        again: set[Key] = set()
        if latest_own:
            self._refresh(LATEST, via="realtime")
        get_many = getattr(self._origin, "get_many", None)
        if not versions:
            return again
        if get_many is None:  # an origin that reads one version at a time
            for version in versions:
                self._refresh(version, via="realtime")
            return again
        slot = None
        if self._gate.failing:
            slot = self._gate.probe()
            if slot is None:
                return {*versions, *([LATEST] if follows else [])}
        generation = self._changes.generation
        started, started_wall = self._clock(), time.time()

        def on_failed(exc: BaseException) -> None:
            self._gate.failed(exc, probe=slot is not None)

        def fetched(outcome: Literal["ok", "error"], error: str | None) -> None:
            self._emit(
                OriginFetched(
                    self._kind.name, None, "refresh", slot is not None, outcome, 1, error,
                    started_wall, self._clock() - started,
                )
            )  # fmt: skip

        try:
            with (
                slot or contextlib.nullcontext(),
                observing_attempts(on_failed, max_attempts=1 if slot is not None else None),
            ):
                found: dict[int, C | InvalidPromptSetError] = await get_many(versions)
        except StorybenchPromptsError as exc:
            self._gate.failed(exc, probe=slot is not None)
            fetched("error", type(exc).__name__)
            if failure_class(exc) == "answer":  # a 403 on the collection, say: it stands
                for version in versions:
                    self._entries.remember_refused(version, exc)
                return set()
            return {*versions, *([LATEST] if follows else [])}
        fetched("ok", None)
        self._gate.answered()
        for version in sorted(versions):
            got = found.get(version)
            if got is None:
                if self._changes.raced_absent(generation, version):
                    again.add(version)  # published meanwhile, maybe: asked again
                    continue
                noun = self._kind.noun
                gone = PromptSetNotFoundError(
                    f"no published {noun} version {version} in Directus", version=version
                )
                self._answers.not_found(version, gone)
            elif isinstance(got, InvalidPromptSetError):
                self._gate.failed(got)  # noted: the entry is served as it was, marked stale
                self._entries.remember_refused(version, got)
            else:
                self._answers.answered(version, got, "realtime", started)
                if self._changes.raced(generation, version, got):
                    stored = self._entries.get(version)  # a change arrived during the read
                    if stored is not None:
                        stored.invalidate()
                    again.add(version)
        latest = self._entries.get(LATEST)
        if follows and latest is not None:
            same = found.get(latest.served.version)
            if same is not None and not isinstance(same, InvalidPromptSetError):
                now = self._clock()
                self._entries.store(
                    LATEST, same, fresh_for=self._policy.latest_ttl, now=now, started=started
                )
                if self._changes.raced(generation, LATEST, same):
                    stored = self._entries.get(LATEST)
                    if stored is not None:
                        stored.invalidate()
                    again.add(LATEST)
        return again
