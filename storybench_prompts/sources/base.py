"""The interfaces every source, mirror and the cache implement, for any content kind.

``PromptRepository[PromptSet]`` reads prompt sets, ``PromptRepository[EvaluationSet]``
evaluation sets; the same code serves both (see ``_kinds``).
"""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Protocol, Self, TypeVar, runtime_checkable

from ..content.models import VersionedContent, VersionInfo

__all__ = ["PromptMirror", "PromptRepository", "SaveOutcome"]

C = TypeVar("C", bound=VersionedContent)
C_co = TypeVar("C_co", bound=VersionedContent, covariant=True)


@runtime_checkable
class PromptRepository(Protocol[C_co]):
    """Read versioned sets (prompt sets or evaluation sets) by version.

    Errors: :class:`PromptSetNotFoundError` when the source answered that no such published
    version exists; :class:`SourceUnavailableError` (or a subclass) when it could not answer.
    Content that breaks the rules raises :class:`InvalidPromptSetError`.
    """

    async def get(self, version: int) -> C_co:
        """The published set with this version number."""
        ...

    async def latest(self) -> C_co:
        """The published set with the highest version number."""
        ...

    async def versions(self) -> list[VersionInfo]:
        """Every published version, lowest version number first."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


SaveOutcome = Literal["new", "updated", "unchanged"]
"""What :meth:`PromptMirror.save` did."""


@runtime_checkable
class PromptMirror(PromptRepository[C], Protocol[C]):
    """A writable copy of published sets that serves when Directus cannot.

    ``get``/``latest``/``versions`` never serve a withdrawn version. Every content a mirror
    ever saved stays readable by its hash (:meth:`get_by_hash`): it is the record of what a
    past benchmark run used.
    """

    name: str
    """Short label used in provenance and messages, e.g. ``mongodb`` or ``file``."""

    async def save(self, content: C) -> SaveOutcome:
        """Store a validated copy as the current one for its version.

        Writes nothing when the current copy has the same hash. Never changes which set is
        active, and never makes a withdrawn version servable again unless this very save is
        of fresh content from Directus (it clears the withdrawal).
        """
        ...

    async def stored_hash(self, version: int) -> str | None:
        """The ``config_hash`` of the current copy of this version, or None when absent."""
        ...

    async def get_by_hash(self, config_hash: str) -> C:
        """Exactly the content saved with this ``config_hash``, withdrawn or not."""
        ...

    async def withdraw(self, version: int) -> bool:
        """Directus no longer publishes this version: keep it as a record, never serve it.

        Returns whether anything changed. Where the mirror tracks an active set and this was
        it, the highest version still served becomes active.
        """
        ...

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        """Mark this version as the one storybench runs (MongoDB's ``is_active``).

        ``only_if_none``: only when no set is active at all. Mirrors without that notion do
        nothing.
        """
        ...

    async def check_writable(self) -> None:
        """Raise :class:`MirrorUnavailableError` unless a write would succeed now."""
        ...
