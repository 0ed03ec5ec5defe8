"""What the layer tells its observers: one small frozen dataclass per thing that happened.

The pieces that know a fact emit it (the cache engine what it served, the origin fetch each
attempt, the outage gate each state change, the mirror writer each write); hooks receive
every event. ``Stats`` is one hook (always installed); logging, listeners and OpenTelemetry
are others. A hook is any callable taking an event; one that raises is logged once and never
breaks a lookup (:class:`Hooks`).

A fresh cache hit is not an event: it is counted on ``Stats`` by the hit path itself, because
building an object per hit would cost more than the hit. Every other answer is a
:class:`Served` or :class:`LookupFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, TypeAlias

from ._logs import get_logger

__all__ = [
    "ChannelChanged",
    "ContentChanged",
    "Event",
    "Hook",
    "Hooks",
    "LookupFailed",
    "MirrorWritten",
    "OriginAttempt",
    "OriginFetched",
    "OriginState",
    "OriginStatus",
    "Served",
    "StateChanged",
]

logger = get_logger("storybench_prompts.hooks")

Source = Literal["cache", "directus", "mirror"]
How = Literal["fresh", "stale", "hedged", "failover"]
Rule = Literal["hit", "stale", "origin", "hedge", "first_failure", "outage", "after_error"]
Via = Literal["realtime", "refresh", "sync"]


class OriginState(StrEnum):
    INITIALIZING = "initializing"
    VALID = "valid"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class OriginStatus:
    """Directus as the cache sees it: its state, since when, and its last failure.

    ``auth_failed``: Directus rejected the token (kept until it answers again).
    ``misconfigured``: the setting to fix (``DIRECTUS_URL``, ``DIRECTUS_TOKEN``) when Directus
    has never answered this process and its failures say a setting is wrong; no copy is served
    around such a failure.
    """

    state: OriginState
    since: float
    """Wall-clock seconds when the current state began."""
    last_error: str | None = None
    last_error_kind: str | None = None
    last_success_at: float | None = None
    auth_failed: bool = False
    misconfigured: str | None = None


@dataclass(frozen=True, slots=True)
class Served:
    """A lookup answered (every answer but a fresh cache hit, which is only counted).

    ``version`` is what was asked (None: the latest); ``served_version`` what was served.
    ``how``: ``fresh`` from Directus or a current entry, ``stale`` past its TTL, ``hedged``
    the mirror because Directus was slow, ``failover`` a copy because Directus failed.
    ``rule`` names the row of the decision table that answered (``docs/architecture.md``):
    ``stale`` (served while refreshed), ``origin``, ``hedge``, ``first_failure`` (a copy at
    Directus's first failed attempt), ``outage`` (Directus known to be failing) or
    ``after_error`` (every attempt failed); ``hit`` for a cache hit the hit path did not count.
    """

    kind: str
    version: int | None
    served_version: int
    source: Source
    how: How
    rule: Rule
    duration: float


@dataclass(frozen=True, slots=True)
class LookupFailed:
    """A lookup that raised: ``not_found`` (Directus has no such published version; source
    ``cache`` when the answer was remembered) or ``error`` (nothing could serve it)."""

    kind: str
    version: int | None
    outcome: Literal["not_found", "error"]
    error_kind: str | None
    source: Source
    duration: float


@dataclass(frozen=True, slots=True)
class OriginAttempt:
    """One request to Directus inside a fetch (a fetch may retry)."""

    kind: str
    version: int | None
    outcome: Literal["ok", "error"]
    error_kind: str | None
    status: int | None
    duration: float


@dataclass(frozen=True, slots=True)
class OriginFetched:
    """One whole fetch from Directus (all its attempts): what a trace span describes.

    ``trigger``: ``caller`` (someone waits for it) or ``refresh`` (in the background);
    ``probe``: a single-attempt recovery probe during an outage. ``started_at`` is
    wall-clock seconds; ``outcome`` ``ok``, ``not_found`` or ``error``.
    """

    kind: str
    version: int | None
    trigger: Literal["caller", "refresh"]
    probe: bool
    outcome: Literal["ok", "not_found", "error"]
    attempts: int
    error_kind: str | None
    started_at: float
    duration: float


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Directus's state moved (``initializing``, ``valid``, ``interrupted``): once per
    transition, never once per call. ``status`` is the new status."""

    old: OriginState
    new: OriginState
    error_kind: str | None
    status: OriginStatus


@dataclass(frozen=True, slots=True)
class ContentChanged:
    """A version now holds other content than before (``old_hash`` None: first seen).

    ``via`` says what noticed it: ``realtime`` (a change event), ``refresh`` (a TTL or
    revalidation fetch) or ``sync``. ``at`` is wall-clock seconds.
    """

    kind: str
    version: int
    old_hash: str | None
    new_hash: str
    via: Via
    at: float

    def __repr__(self) -> str:
        return (
            f"ContentChanged(kind={self.kind!r}, version={self.version}, "
            f"{self.old_hash} -> {self.new_hash}, via={self.via!r})"
        )


@dataclass(frozen=True, slots=True)
class MirrorWritten:
    """A mirror write or withdrawal done in the background (or by sync)."""

    kind: str
    version: int
    action: Literal["save", "withdraw"]
    outcome: Literal["new", "updated", "unchanged", "withdrawn", "error"]
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelChanged:
    """Directus's realtime channel went up (open) or down (any other state)."""

    up: bool
    state: str
    reason: str | None = None


Event: TypeAlias = (
    Served
    | LookupFailed
    | OriginAttempt
    | OriginFetched
    | StateChanged
    | ContentChanged
    | MirrorWritten
    | ChannelChanged
)


class Hook(Protocol):
    """Receives every event. Must not block: it runs on the caller's path."""

    def __call__(self, event: Event) -> None: ...


class Hooks:
    """The hooks of one stack, called in order; a hook that raises is logged once and skipped
    for that event only (it keeps receiving the next ones)."""

    __slots__ = ("_failed", "_hooks")

    def __init__(self, hooks: Iterable[Callable[[Event], None]] = ()) -> None:
        self._hooks: tuple[Callable[[Event], None], ...] = tuple(hooks)
        self._failed: set[int] = set()

    def add(self, hook: Callable[[Event], None]) -> Callable[[], None]:
        """Install one more hook; returns a function that removes it."""
        self._hooks = (*self._hooks, hook)

        def remove() -> None:
            self._hooks = tuple(h for h in self._hooks if h is not hook)

        return remove

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def __iter__(self) -> Iterator[Callable[[Event], None]]:
        return iter(self._hooks)

    def emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                if id(hook) not in self._failed:
                    self._failed.add(id(hook))
                    logger.exception(
                        "a storybench-prompts hook (%r) raised; it is skipped for this event "
                        "and this is logged once",
                        hook,
                    )
