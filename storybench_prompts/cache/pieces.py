"""The engine's pieces for one kind, made and wired together in one place.

Each piece owns its state (see its module); this is the only place that knows which piece
talks to which. The engine keeps the result and serves the hit path itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .._events import Event
from ..content.kinds import ContentKind
from ..content.models import VersionedContent
from ..mirrors.base import PromptMirror
from ..sources.base import PromptRepository
from .answers import Answers
from .batched import BatchedReads
from .change_rounds import ChangeRounds
from .changes import ChangeTracker
from .drift import DriftLog
from .entries import EntryTable, Key
from .fallback import Copies
from .mirror_io import MirrorIO
from .origin import OriginFetches
from .policy import CachePolicy
from .read_path import ReadPath
from .stack import Stack
from .stats import Stats
from .withdrawals import WithdrawalLedger

__all__ = ["Pieces", "assemble"]

C = TypeVar("C", bound=VersionedContent)


@dataclass(frozen=True, slots=True)
class Pieces(Generic[C]):
    entries: EntryTable[C]
    changes: ChangeTracker
    mirror_io: MirrorIO[C] | None
    drift: DriftLog
    ledger: WithdrawalLedger[C]
    origin: OriginFetches[C]
    copies: Copies[C]
    read: ReadPath[C]
    rounds: ChangeRounds[C]
    stats: Stats


def assemble(
    origin: PromptRepository[C],
    mirror: PromptMirror[C] | None,
    *,
    kind: ContentKind[C],
    policy: CachePolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    rand: Callable[[], float],
    stack: Stack,
    emit: Callable[[Event], None],
) -> Pieces[C]:
    stats = Stats()
    entries: EntryTable[C] = EntryTable(policy, clock)
    changes = ChangeTracker(kind, lambda: stack.channel)
    mirror_io: MirrorIO[C] | None = (
        MirrorIO(mirror, kind=kind, timeout=policy.mirror_timeout, sleep=sleep, emit=emit)
        if mirror is not None
        else None
    )
    drift = DriftLog(kind, emit)
    ledger: WithdrawalLedger[C] = WithdrawalLedger()
    answers: Answers[C] = Answers(
        kind=kind,
        policy=policy,
        clock=clock,
        entries=entries,
        ledger=ledger,
        mirror=mirror_io,
        drift=drift,
        stack=stack,
    )
    fetches: OriginFetches[C] = OriginFetches(
        origin,
        kind=kind,
        policy=policy,
        clock=clock,
        entries=entries,
        answers=answers,
        changes=changes,
        stack=stack,
        emit=emit,
        sleep=sleep,
    )
    batched: BatchedReads[C] = BatchedReads(
        origin,
        kind=kind,
        policy=policy,
        clock=clock,
        entries=entries,
        changes=changes,
        gate=stack.gate,
        answers=answers,
        refresh=fetches.refresh_in_background,
        emit=emit,
    )
    copies: Copies[C] = Copies(
        kind=kind,
        entries=entries,
        ledger=ledger,
        mirror=mirror_io,
        stack=stack,
        clock=clock,
        withdraw_above=answers.withdraw_above,
    )
    read: ReadPath[C] = ReadPath(
        kind=kind,
        policy=policy,
        clock=clock,
        sleep=sleep,
        entries=entries,
        changes=changes,
        gate=stack.gate,
        origin=fetches,
        copies=copies,
        mirror=mirror_io,
        stats=stats,
        emit=emit,
    )
    rounds: ChangeRounds[C] = ChangeRounds(
        entries=entries,
        changes=changes,
        refetch=batched.refetch,
        stack=stack,
        clock=clock,
        sleep=sleep,
        rand=rand,
    )
    fetches.raced = rounds.raced

    def revalidating(key: Key) -> bool:
        # A changed entry is served at once while its round waits or its refetch runs.
        return rounds.is_pending(key) or fetches.in_flight(key)

    read.revalidating = revalidating
    return Pieces(entries, changes, mirror_io, drift, ledger, fetches, copies, read, rounds, stats)
