"""Getting back exactly what a lock names, wherever it still is, and keeping it there.

:func:`resolve_locked` looks in order at the version as the repository serves it now (cache,
Directus, or the mirror when Directus cannot answer), then by hash (the cache, the repository's
mirror), then in any further mirror given. Every candidate is re-hashed (``rehash``, never the
hash cached on the object): the first one whose content hashes to the locked ``config_hash`` is
the answer, and a copy that does not is never returned; it is the next place's turn. When no
place has it, :class:`LockedContentNotFoundError` names the hash and says why each place had
nothing. :func:`keep_in_mirror` makes sure a mirror holds the locked content, so it can be had
after Directus changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from .._exceptions import (
    ContentChangedError,
    LockedContentNotFoundError,
    MirrorCorruptError,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from ..content.kinds import ContentKind
from ..content.models import VersionedContent, rehash
from ..mirrors import integrity
from ..mirrors.base import PromptMirror
from ..sources.base import PromptRepository
from .lock import LockedSet

__all__ = ["Resolved", "keep_in_mirror", "resolve_locked"]

C = TypeVar("C", bound=VersionedContent)


@runtime_checkable
class _ByHash(Protocol):
    async def get_by_hash(self, config_hash: str) -> Any: ...


@dataclass(frozen=True)
class Resolved(Generic[C]):
    """The locked content, and where it was found (``directus``, ``cache``, or a mirror's
    name, e.g. ``mirror (file)``)."""

    content: C
    found_in: str
    misses: tuple[BaseException, ...] = ()
    """Why the places looked at first had no copy that hashes to the lock."""


def _where(content: VersionedContent, mirror_label: str) -> str:
    provenance = content.provenance
    if provenance is None or provenance.source == "mirror":
        return mirror_label
    return provenance.source


def _mirror_label(repository: object) -> str:
    mirror = getattr(repository, "mirror", None)
    return f"mirror ({mirror.name})" if mirror is not None else "mirror"


async def resolve_locked(
    repository: PromptRepository[C],
    locked: LockedSet,
    *,
    kind: ContentKind[C],
    mirrors: Sequence[PromptMirror[C]] = (),
) -> Resolved[C]:
    """Exactly the content ``locked`` names (see the module): never other content."""
    misses: list[BaseException] = []
    what = f"{kind.noun} v{locked.version} ({locked.config_hash})"

    def accept(candidate: C, location: str) -> C | None:
        if candidate.version != locked.version:
            misses.append(
                PromptSetNotFoundError(f"{location} holds it as version {candidate.version}")
            )
            return None
        try:
            return integrity.checked(candidate, location=location, expected=locked.config_hash)
        except MirrorCorruptError as exc:
            misses.append(exc)
            return None

    # 1. The version as served now: Directus's current content, usually.
    try:
        current = await repository.get(locked.version)
    except StorybenchPromptsError as exc:
        misses.append(exc)
    else:
        actual = rehash(current)
        if actual == locked.config_hash:
            return Resolved(current, _where(current, _mirror_label(repository)), tuple(misses))
        misses.append(
            ContentChangedError(
                f"{kind.noun} version {locked.version} now holds {actual}",
                version=locked.version,
                expected=locked.config_hash,
                actual=actual,
            )
        )
    # 2. By hash: the repository's cache and mirror; 3. any further mirror.
    places: list[tuple[str, Any]] = []
    if isinstance(repository, _ByHash):
        places.append((_mirror_label(repository), repository))
    places += [(f"mirror ({m.name})", m) for m in mirrors]
    for label, place in places:
        try:
            found: C = await place.get_by_hash(locked.config_hash)
        except StorybenchPromptsError as exc:
            misses.append(exc)
            continue
        accepted = accept(found, f"{label} copy of {what}")
        if accepted is not None:
            return Resolved(accepted, _where(accepted, label), tuple(misses))
    reasons = "; ".join(f"{type(m).__name__}: {_first_line(m)}" for m in misses)
    raise LockedContentNotFoundError(
        f"the locked {what} cannot be found anywhere"
        + (f" ({reasons})" if reasons else "")
        + "; no other content is served in its place",
        kind=kind.name,
        version=locked.version,
        config_hash=locked.config_hash,
        causes=misses,
    )


async def keep_in_mirror(mirror: PromptMirror[C], content: C) -> C:
    """Save ``content`` (its record by hash at least) and read it back by hash, re-hashed:
    the copy the mirror will serve for this lock."""
    await mirror.save(content)
    copy = await mirror.get_by_hash(content.config_hash)
    return integrity.checked(
        copy,
        location=f"the {mirror.name} mirror's copy of {content.config_hash}",
        expected=rehash(content),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""
