"""Offline: the mirror as the only source (``STORYBENCH_PROMPTS_OFFLINE=true``).

An exported snapshot (``storybench-prompts export``), or any mirror, answers every read as
Directus would, and nothing connects to Directus. :class:`OfflineOrigin` is both the cache's
origin and its mirror: reads go to the mirror (which re-hashes every copy), writes do nothing
(a snapshot is served as it was made), and a version the snapshot lacks is a
:class:`PromptSetNotFoundError` saying what it does hold.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .._closing import Closeable
from .._exceptions import MirrorUnavailableError, PromptSetNotFoundError
from ..content.kinds import ContentKind
from ..content.models import VersionedContent, VersionInfo
from .base import PromptMirror, SaveOutcome

__all__ = ["OfflineOrigin"]

C = TypeVar("C", bound=VersionedContent)
D = TypeVar("D", bound=VersionedContent)


class OfflineOrigin(Generic[C], Closeable):
    """A read-only mirror serving as the origin. Implements ``PromptRepository`` and
    ``PromptMirror`` (whose writes do nothing)."""

    name = "offline"

    def __init__(self, mirror: PromptMirror[C]) -> None:
        self.mirror = mirror
        self.kind: ContentKind[C] = mirror.kind  # type: ignore[attr-defined]

    def for_kind(self, kind: ContentKind[D]) -> OfflineOrigin[D]:
        """The same snapshot, for another kind."""
        sibling: PromptMirror[D] = self.mirror.for_kind(kind)  # type: ignore[attr-defined]
        return OfflineOrigin(sibling)

    def __repr__(self) -> str:
        return f"OfflineOrigin({self.mirror!r})"

    @property
    def where(self) -> str:
        """The snapshot, as a person finds it: its directory, else the mirror's name."""
        directory = getattr(self.mirror, "directory", None)
        return (
            f"the offline snapshot {directory}" if directory else f"the {self.mirror.name} mirror"
        )

    async def aclose(self) -> None:
        await self.mirror.aclose()

    # -- reading ---------------------------------------------------------------------------

    async def _held(self) -> str:
        try:
            versions = [i.version for i in await self.mirror.versions()]
        except Exception:  # the listing is only for the message
            return ""
        if not versions:
            return f"; it holds no {self.kind.noun}"
        return f"; it holds {self.kind.noun} versions {', '.join(str(v) for v in versions)}"

    async def get(self, version: int) -> C:
        try:
            return await self.mirror.get(version)
        except PromptSetNotFoundError as exc:
            raise PromptSetNotFoundError(
                f"offline: {self.where} has no {self.kind.noun} version {version} "
                f"({exc}){await self._held()}",
                version=version,
            ) from exc

    async def latest(self) -> C:
        try:
            return await self.mirror.latest()
        except PromptSetNotFoundError as exc:
            raise PromptSetNotFoundError(
                f"offline: {self.where} holds no {self.kind.noun} ({exc})"
            ) from exc

    async def versions(self) -> list[VersionInfo]:
        return await self.mirror.versions()

    async def stored_hash(self, version: int) -> str | None:
        return await self.mirror.stored_hash(version)

    async def get_by_hash(self, config_hash: str) -> C:
        try:
            return await self.mirror.get_by_hash(config_hash)
        except PromptSetNotFoundError as exc:
            raise PromptSetNotFoundError(
                f"offline: {self.where} has no {self.kind.noun} with hash {config_hash} ({exc})"
            ) from exc

    # -- writing: nothing ------------------------------------------------------------------

    async def save(self, content: C) -> SaveOutcome:
        return "unchanged"

    async def withdraw(self, version: int) -> bool:
        return False

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        return None

    async def check_writable(self) -> None:
        raise MirrorUnavailableError(f"offline: {self.where} is served read-only")
