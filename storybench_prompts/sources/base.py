"""What every source, mirror and the cache answer: ``PromptRepository``, for any content kind.

``PromptRepository[PromptSet]`` reads prompt sets, ``PromptRepository[EvaluationSet]``
evaluation sets; the same code serves both (see ``content.kinds``).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, TypeVar, runtime_checkable

from ..content.models import VersionedContent, VersionInfo

__all__ = ["PromptRepository"]

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
