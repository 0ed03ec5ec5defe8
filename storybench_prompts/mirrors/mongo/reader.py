"""Reading the MongoDB mirror: the copy to serve of each version, by hash, by prefix, and
the versions kept only as records. Which copy of a version is served is ``codec``'s rule."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import pymongo

from ..._exceptions import MirrorCorruptError, PromptSetNotFoundError
from ...content.kinds import ContentKind
from ...content.models import VersionedContent, VersionInfo
from .codec import COPY_ORDER, SERVED, Codec, Pick

__all__ = ["Reader"]

C = TypeVar("C", bound=VersionedContent)


class Reader(Generic[C]):
    def __init__(
        self,
        collection: Any,
        codec: Codec[C],
        kind: ContentKind[C],
        errors: Callable[[str], contextlib.AbstractContextManager[None]],
    ) -> None:
        self._collection = collection
        self._codec = codec
        self.kind = kind
        self._errors = errors

    async def find(
        self,
        query: Mapping[str, Any],
        sort: Sequence[tuple[str, int]],
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return [d async for d in self._collection.find(query, projection, sort=sort)]

    async def current(self, version: int) -> Pick[C]:
        with self._errors(f"reading version {version}"):
            documents = await self.find({"version": int(version)}, COPY_ORDER)
        return self._codec.pick(documents)

    async def servable_by_version(
        self, direction: int, *, stop_at_first: bool, raise_corrupt: bool
    ) -> list[C]:
        """The current copy of each served version, in version order; corrupt ones skipped.

        ``raise_corrupt``: a version whose copies all fail raises instead of being skipped.
        """
        out: list[C] = []
        group: list[dict[str, Any]] = []

        def close_group() -> bool:
            if not group:
                return False
            pick = self._codec.pick(group)
            group.clear()
            if pick.content is not None:
                out.append(pick.content)
                return stop_at_first
            if pick.corrupt and raise_corrupt:
                raise pick.corrupt[0]
            return False

        with self._errors(f"listing {self.kind.noun}s"):
            cursor = self._collection.find(SERVED, sort=[("version", direction), *COPY_ORDER])
            try:
                async for document in cursor:
                    new_version = bool(group) and group[0].get("version") != document.get("version")
                    if new_version and close_group():
                        return out
                    group.append(document)
            finally:
                closing = cursor.close()  # a coroutine with PyMongo, a future with motor
                if inspect.isawaitable(closing):
                    await closing
        close_group()
        return out

    async def withdrawn_versions(self, served: set[int]) -> list[VersionInfo]:
        """The versions kept only as records (every copy withdrawn), with the hash each
        last held."""
        with self._errors(f"listing withdrawn {self.kind.noun}s"):
            documents = await self.find(
                {"withdrawn_at": {"$ne": None}, "schema_version": {"$exists": True}},
                [("version", pymongo.ASCENDING), *COPY_ORDER],
            )
        out: list[VersionInfo] = []
        for document in documents:
            version = document.get("version")
            if not isinstance(version, int) or version in served:
                continue
            if out and out[-1].version == version:
                continue  # the copy synced last is the one listed
            try:
                out.append(self._codec.decode(document).info())
            except MirrorCorruptError:
                continue
        return out

    async def hashes_with_prefix(self, prefix: str) -> list[str]:
        """Every ``config_hash`` the collection holds that starts with ``prefix`` (hex),
        sorted; for resolving a short hash as git does."""
        prefix = prefix.lower()
        # Hex digits sort below "g": every hash with this prefix is in [prefix, prefix + "g").
        query = {"config_hash": {"$gte": prefix, "$lt": prefix + "g"}}
        with self._errors(f"looking up hashes starting with {prefix!r}"):
            documents = await self.find(query, [("config_hash", pymongo.ASCENDING)])
        found = {d.get("config_hash") for d in documents}
        return sorted(h for h in found if isinstance(h, str) and h.startswith(prefix))

    async def get_by_hash(self, config_hash: str) -> C:
        with self._errors(f"reading hash {config_hash!r}"):
            documents = await self.find({"config_hash": str(config_hash)}, COPY_ORDER)
        # Our own document (``_id`` is the hash) first.
        documents.sort(key=lambda d: d.get("_id") != config_hash)
        corrupt: list[MirrorCorruptError] = []
        for document in documents:
            if "schema_version" not in document:
                continue
            try:
                return self._codec.decode(document)
            except MirrorCorruptError as exc:
                corrupt.append(exc)
        if corrupt:
            raise corrupt[0]
        legacy = " (only storybench's own document, which cannot be verified)" if documents else ""
        raise PromptSetNotFoundError(
            f"the MongoDB mirror holds no {self.kind.noun} with hash {config_hash!r}{legacy}"
        )
