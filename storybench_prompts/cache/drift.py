"""Versions whose content changed in Directus under the same version number.

Noticed when a fetch brings another ``config_hash`` than the cache or the mirror held for the
version; logged once, kept (the last hundred), and emitted as a ``ContentChanged`` event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._events import ContentChanged, Event, Via
from .._logs import fields, get_logger
from ..content.kinds import ContentKind

__all__ = ["Drift", "DriftLog"]

logger = get_logger("storybench_prompts.cache", source="directus")

_KEPT = 100


@dataclass(frozen=True, slots=True)
class Drift:
    """A version whose content changed in Directus under the same version number."""

    kind: str
    version: int
    old_hash: str
    new_hash: str
    at: float
    """Wall-clock seconds when it was noticed."""


class DriftLog:
    __slots__ = ("_drifts", "_emit", "_kind")

    def __init__(self, kind: ContentKind[Any], emit: Callable[[Event], None]) -> None:
        self._kind = kind
        self._emit = emit
        self._drifts: list[Drift] = []

    def notice(self, version: int, old_hash: str | None, new_hash: str, via: Via) -> None:
        if old_hash is None or old_hash == new_hash:
            return
        if any(d.version == version and d.new_hash == new_hash for d in self._drifts):
            return
        drift = Drift(self._kind.name, version, old_hash, new_hash, time.time())
        self._drifts.append(drift)
        del self._drifts[:-_KEPT]
        self._emit(ContentChanged(self._kind.name, version, old_hash, new_hash, via, drift.at))
        logger.warning(
            "%s version %d changed in Directus under the same version number: %s -> %s",
            self._kind.noun,
            version,
            old_hash,
            new_hash,
            extra=fields(kind=self._kind.name, version=version, source="directus"),
        )

    def list(self) -> list[Drift]:
        return list(self._drifts)
