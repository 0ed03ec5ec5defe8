"""Where a copy comes from when Directus is slow or failing.

The cache's own entry (any age) first, else the mirror's copy, read once for all callers of a
key and passed through the withdrawal ledger, which may refuse it (withdrawn, or older than
what ``latest()`` already served) or prefer a newer one. A copy served because Directus failed
is kept for ``fallback_ttl``, so callers do not reread the mirror every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from .._exceptions import (
    PromptSetNotFoundError,
    PromptSetUnavailableError,
    SourceUnavailableError,
    StorybenchPromptsError,
)
from ..content.kinds import ContentKind
from ..content.models import VersionedContent
from .entries import LATEST, EntryTable, Key
from .mirror_io import MirrorIO
from .outage import OutageGate
from .singleflight import Flight
from .stack import Stack
from .timing import first_of
from .withdrawals import WithdrawalLedger

__all__ = ["Copies"]

C = TypeVar("C", bound=VersionedContent)


def _with_error(copy: C, kind: str | None) -> C:
    assert copy.provenance is not None
    return copy.with_provenance(copy.provenance.model_copy(update={"origin_error": kind}))


class Copies(Generic[C]):
    def __init__(
        self,
        *,
        kind: ContentKind[C],
        entries: EntryTable[C],
        ledger: WithdrawalLedger[C],
        mirror: MirrorIO[C] | None,
        stack: Stack,
        clock: Callable[[], float],
        withdraw_above: Callable[[int], None],
    ) -> None:
        self._kind = kind
        self._entries = entries
        self._ledger = ledger
        self._mirror = mirror
        self._stack = stack
        self._gate: OutageGate = stack.gate
        self._clock = clock
        self._withdraw_above = withdraw_above

    def what(self, key: Key) -> str:
        noun = self._kind.noun
        return f"the latest {noun}" if key == LATEST else f"{noun} version {key}"

    def servable(self, key: Key, copy: C) -> C | None:
        """The mirror's copy as the ledger allows it (or what it prefers), else None."""
        verdict = self._ledger.servable(key, copy, self._entries.get(key))
        if verdict.withdraw_above is not None:
            # Directus's latest is lower: the mirror has not caught up with a withdrawal.
            self._withdraw_above(verdict.withdraw_above)
        return verdict.copy

    async def _mirror_copy(self, key: Key) -> C | StorybenchPromptsError:
        if self._mirror is None:
            return SourceUnavailableError("no mirror configured")
        outcome = await self._mirror.read(key, self._stack.task_group)
        if isinstance(outcome, StorybenchPromptsError):
            return outcome
        copy = self.servable(key, outcome)
        if copy is None:
            return PromptSetNotFoundError(f"the mirror's copy of {key} was withdrawn")
        return copy

    async def failover(
        self, key: Key, error_kind: str | None, misses: list[BaseException] | None = None
    ) -> C | None:
        """A copy to serve because Directus failed: the cache (any age), else the mirror. Why
        the mirror had none is added to ``misses``. A failure a person must fix is raised."""
        self._raise_refusal()
        entry = self._entries.get(key)
        if entry is not None:
            return entry.stale_copy(origin_error=error_kind)
        outcome = await self._mirror_copy(key)
        if isinstance(outcome, StorybenchPromptsError):
            if misses is not None:
                misses.append(outcome)
            return None
        self._entries.store_fallback(key, outcome, probe_in=self._probe_in())
        return _with_error(outcome, error_kind)

    async def hedge(self, key: Key, flight: Flight[C]) -> C | None:
        """Directus is slow: whichever of Directus and the mirror answers first."""
        assert self._mirror is not None
        if self._gate.refusal() is not None:
            return None  # Directus's own answer decides (it refused us before)
        mirror_flight = self._mirror.join_read(key, self._stack.task_group)
        await first_of(flight.done, mirror_flight.done, timeout=float("inf"), sleep=_never)
        if flight.done.is_set() and flight.error is None:
            return None  # Directus won; the caller takes its result
        if not mirror_flight.done.is_set():
            return None  # Directus failed first; the error path reads the mirror
        outcome = MirrorIO.outcome(mirror_flight)
        if isinstance(outcome, StorybenchPromptsError):
            return None
        copy = self.servable(key, outcome)
        if copy is None:
            return None
        assert copy.provenance is not None
        return copy.with_provenance(copy.provenance.model_copy(update={"hedged": True}))

    async def after_error(self, key: Key, error: BaseException) -> C:
        """The fetch failed in the end: the cached copy, else the mirror's, else raise with
        every cause. A failure a person must fix is raised, never served around."""
        self._raise_refusal()
        entry = self._entries.get(key)
        if entry is not None:
            return entry.stale_copy(origin_error=type(error).__name__)
        outcome = await self._mirror_copy(key)
        if isinstance(outcome, StorybenchPromptsError):
            raise PromptSetUnavailableError(
                f"{self.what(key)} could not be served", causes=[error, outcome]
            ) from error
        self._entries.store_fallback(key, outcome, probe_in=self._probe_in())
        return _with_error(outcome, type(error).__name__)

    def _probe_in(self) -> float:
        if not self._gate.failing:
            return float("inf")
        return self._gate.next_probe_in(self._clock())

    def _raise_refusal(self) -> None:
        refusal = self._gate.refusal()
        if refusal is not None:
            raise refusal

    def known_outage_error(
        self, key: Key, misses: list[BaseException]
    ) -> PromptSetUnavailableError:
        status = self._gate.status
        wait = self._gate.next_probe_in(self._clock())
        cause = self._gate.last_exception or SourceUnavailableError(
            status.last_error or "Directus is failing"
        )
        return PromptSetUnavailableError(
            f"{self.what(key)} could not be served: no copy in cache or mirror, and Directus has "
            f"been failing ({status.last_error_kind}); it is asked again in {wait:.1f} s",
            causes=[cause, *misses],
        )


async def _never(_seconds: float) -> None:
    """A timer that never fires (``first_of`` with no timeout)."""
    await anyio.sleep_forever()
