"""An in-memory mirror, shipped for users' own tests (like httpx's ``MockTransport``).

It follows the same rules as the real mirrors: content is validated before it is stored;
every content saved stays readable by its hash; every copy read is re-hashed first (one whose
content no longer hashes to its hash, or to the hash asked for, raises ``MirrorCorruptError``
and is never served); a withdrawn version is never served until a
save of it fresh from Directus; ``save`` never changes the active version, ``activate(v,
only_if_none=True)`` only sets one when none is set, and withdrawing the active version makes
the highest version still served active (or leaves it when there is none).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .._closing import Closeable
from .._exceptions import PromptSetNotFoundError
from ..content.kinds import ContentKind
from ..content.models import Provenance, VersionedContent, VersionInfo
from . import integrity
from .base import SaveOutcome

__all__ = ["InMemoryMirror"]

C = TypeVar("C", bound=VersionedContent)
D = TypeVar("D", bound=VersionedContent)


class InMemoryMirror(Generic[C], Closeable):
    """A mirror in a dict. Implements ``PromptMirror``; validates like the real ones.

    ``saves`` counts the saves that wrote something; ``active_version`` is what
    :meth:`activate` set (None until then).
    """

    name = "memory"

    def __init__(self, sets: list[C] | None = None, *, kind: ContentKind[C]) -> None:
        self.kind: ContentKind[C] = kind
        self._current: dict[int, C] = {}
        self._by_hash: dict[str, C] = {}
        self._withdrawn: set[int] = set()
        self.saves = 0
        self.active_version: int | None = None
        for content in sets or []:
            self._store(self._checked(content))

    def for_kind(self, kind: ContentKind[D]) -> InMemoryMirror[D]:
        """An empty mirror of another kind."""
        return InMemoryMirror(kind=kind)

    def _checked(self, content: C) -> C:
        if not isinstance(content, self.kind.model):
            raise TypeError(f"this mirror holds {self.kind.noun}s, not {type(content).__name__}")
        return self.kind.ensure_valid(content)

    def _store(self, content: C) -> None:
        self._current[content.version] = content
        self._by_hash.setdefault(content.config_hash, content)

    def _served(self, content: C, *, where: str, expected: str | None = None) -> C:
        integrity.checked(
            content, location=f"memory mirror {self.kind.name} {where}", expected=expected
        )
        fetched = content.provenance.fetched_at_epoch if content.provenance else 0.0
        return content.with_provenance(
            Provenance(source="mirror", origin="directus", fetched_at_epoch=fetched)
        )

    def _servable(self) -> list[int]:
        return sorted(v for v in self._current if v not in self._withdrawn)

    async def get(self, version: int) -> C:
        if version in self._withdrawn:
            raise PromptSetNotFoundError(
                f"the memory mirror holds version {version}, but it was withdrawn",
                version=version,
            )
        try:
            stored = self._current[version]
        except KeyError:
            raise PromptSetNotFoundError(
                f"the memory mirror holds no version {version}", version=version
            ) from None
        return self._served(stored, where=f"v{version}")

    async def latest(self) -> C:
        servable = self._servable()
        if not servable:
            raise PromptSetNotFoundError(f"the memory mirror holds no served {self.kind.noun}")
        return self._served(self._current[servable[-1]], where=f"v{servable[-1]}")

    async def versions(self) -> list[VersionInfo]:
        return [self._current[v].info() for v in self._servable()]

    @property
    def location(self) -> str:
        return "memory mirror"

    async def withdrawn_versions(self) -> list[VersionInfo]:
        """The versions kept only as records (withdrawn)."""
        return [self._current[v].info() for v in sorted(self._withdrawn)]

    async def hashes_with_prefix(self, prefix: str) -> list[str]:
        """Every ``config_hash`` held that starts with ``prefix``, sorted."""
        return sorted(h for h in self._by_hash if h.startswith(prefix.lower()))

    async def stored_hash(self, version: int) -> str | None:
        if version in self._withdrawn:
            return None
        stored = self._current.get(version)
        return stored.config_hash if stored else None

    async def get_by_hash(self, config_hash: str) -> C:
        try:
            stored = self._by_hash[config_hash]
        except KeyError:
            raise PromptSetNotFoundError(
                f"the memory mirror holds no {self.kind.noun} with hash {config_hash!r}"
            ) from None
        return self._served(stored, where=config_hash, expected=config_hash)

    async def save(self, content: C) -> SaveOutcome:
        self._checked(content)
        version = content.version
        withdrawn = version in self._withdrawn
        fresh = content.provenance is None or content.provenance.source == "directus"
        if withdrawn and not fresh:
            self._by_hash.setdefault(content.config_hash, content)
            return "unchanged"  # recorded; only Directus can publish the version again
        previous = self._current.get(version)
        if not withdrawn and previous is not None and previous.config_hash == content.config_hash:
            return "unchanged"
        self._store(content)
        self._withdrawn.discard(version)
        self.saves += 1
        return "new" if previous is None or withdrawn else "updated"

    async def withdraw(self, version: int) -> bool:
        if version not in self._current or version in self._withdrawn:
            return False
        self._withdrawn.add(version)
        if self.active_version == version:
            servable = self._servable()
            if servable:
                self.active_version = servable[-1]
        return True

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        if version not in self._servable():
            raise PromptSetNotFoundError(
                f"the memory mirror holds no served version {version}", version=version
            )
        if only_if_none and self.active_version is not None:
            return
        self.active_version = version

    async def check_writable(self) -> None:
        return None
