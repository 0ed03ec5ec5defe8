"""The read path as a decision without I/O: given what the cache knows, what a lookup does.

``decide`` turns (the entry, now, a remembered "not found" or refused answer, whether
Directus's changes are pushed, whether Directus is known to be failing, whether a revalidation
round has the entry) into one :class:`Action`; the read path (``read_path.py``) carries it
out and is the only place that awaits anything. The fresh hit is decided before this, on the
hit path itself (``engine.py``): an entry whose ``fresh_until`` has not passed is served at
once.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from .entries import Entry

__all__ = ["Action", "decide"]


class Action(Enum):
    CURRENT = "current"
    """Serve the entry: realtime is up and no change has touched it since it was fetched."""
    NOT_FOUND = "not_found"
    """Directus said there is no such version, recently: raise it again, ask nothing."""
    REFUSED = "refused"
    """Directus's answer was refused (invalid content, a 403) and no change has touched it
    since: a copy where one may be served, else that refusal; ask nothing."""
    STALE = "stale"
    """Serve the entry marked stale at once; refresh it in the background."""
    REVALIDATING = "revalidating"
    """A change touched it and a revalidation round is refetching it: serve it marked stale."""
    OUTAGE = "outage"
    """Directus is known to be failing: a copy at once; only a due probe asks Directus."""
    FETCH = "fetch"
    """Ask Directus (one shared fetch); hedge with the mirror and fail over as it goes."""


def decide(
    entry: Entry[Any] | None,
    now: float,
    *,
    not_found: bool,
    refused: bool = False,
    pushed: bool,
    failing: bool,
    revalidating: bool = False,
) -> Action:
    if not_found:
        return Action.NOT_FOUND
    if refused:
        return Action.REFUSED
    if entry is not None and entry.invalidated and revalidating:
        return Action.REVALIDATING
    if entry is not None and not entry.invalidated:
        if entry.from_origin and pushed:
            return Action.CURRENT
        if now < entry.stale_until:
            return Action.STALE
    if failing:
        return Action.OUTAGE
    return Action.FETCH
