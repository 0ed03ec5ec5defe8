"""A source whose every call to Directus goes through one method: for timing it, observing it.

Subclasses override :meth:`WrappedSource.around`. Every other attribute (``kind``, ``url``,
``name``) is the wrapped source's; ``get_many`` exists exactly when the wrapped source has it,
so code that checks for a batched read still finds the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

from .._closing import Closeable
from ..content.models import VersionedContent, VersionInfo
from .base import PromptRepository

__all__ = ["WrappedSource"]

C = TypeVar("C", bound=VersionedContent)
T = TypeVar("T")


class WrappedSource(Generic[C], Closeable):
    def __init__(self, source: PromptRepository[C]) -> None:
        self._source = source

    async def around(self, version: int | None, call: Awaitable[T]) -> T:
        """Await one call (``version``: the one asked for, None for the latest or a list)."""
        return await call

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._source, name)
        if name == "get_many":
            return lambda versions, **options: self.around(None, found(versions, **options))
        return found

    async def get(self, version: int) -> C:
        return await self.around(version, self._source.get(version))

    async def latest(self) -> C:
        return await self.around(None, self._source.latest())

    async def versions(self) -> list[VersionInfo]:
        return await self.around(None, self._source.versions())

    async def aclose(self) -> None:
        await self._source.aclose()
