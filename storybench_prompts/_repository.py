"""The interface every source, mirror and the cache implement."""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from ._models import PromptSet, VersionInfo

__all__ = ["PromptMirror", "PromptRepository", "SaveOutcome"]


@runtime_checkable
class PromptRepository(Protocol):
    """Read prompt sets by version.

    Errors: :class:`PromptSetNotFoundError` when the source answered that no such published
    version exists; :class:`SourceUnavailableError` (or a subclass) when it could not answer.
    Content that breaks the rules raises :class:`InvalidPromptSetError`.
    """

    async def get(self, version: int) -> PromptSet:
        """The published prompt set with this version number."""
        ...

    async def latest(self) -> PromptSet:
        """The published prompt set with the highest version number."""
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
class PromptMirror(PromptRepository, Protocol):
    """A writable copy of published prompt sets that serves when Directus cannot."""

    name: str
    """Short label used in provenance and messages, e.g. ``mongodb`` or ``file``."""

    async def save(self, prompt_set: PromptSet) -> SaveOutcome:
        """Store a validated copy; write nothing when the stored hash is the same."""
        ...

    async def stored_hash(self, version: int) -> str | None:
        """The ``config_hash`` stored for this version, or None when absent."""
        ...

    async def activate(self, version: int) -> None:
        """Mark this version as the one storybench runs (MongoDB's ``is_active``).

        Mirrors without that notion do nothing.
        """
        ...

    async def check_writable(self) -> None:
        """Raise :class:`MirrorUnavailableError` unless a write would succeed now."""
        ...
