"""``async with x:`` for the package's sources and mirrors: ``x`` on the way in, ``aclose()``
on the way out (the one thing each of them defines)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Closeable"]


class Closeable:
    __slots__ = ()

    async def aclose(self) -> None:
        """Release what this object holds (nothing, unless a subclass says otherwise)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
