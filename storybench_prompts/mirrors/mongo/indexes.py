"""The MongoDB mirror's indexes: only non-unique ones, built once, and our 0.1 schema's unique
``version`` index dropped (found by its key: some servers do not keep index names)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import pymongo
import pymongo.errors

from ..._exceptions import MirrorUnavailableError
from ..._logs import get_logger
from .errors import scrub

__all__ = ["Indexes"]

logger = get_logger("storybench_prompts.mirrors", source="mongodb")

# Non-unique on purpose: an existing storybench collection may hold anything, and no index
# build may fail on it. Uniqueness of a hash comes from ``_id``.
_INDEXES: tuple[tuple[tuple[str, int], ...], ...] = (
    (("config_hash", pymongo.ASCENDING),),
    (("version", pymongo.ASCENDING), ("sync_order", pymongo.DESCENDING)),
    (("is_active", pymongo.ASCENDING),),
    (("activation_seq", pymongo.DESCENDING),),
)


class Indexes:
    def __init__(
        self,
        db: Any,
        collection: Any,
        errors: Callable[[str], contextlib.AbstractContextManager[None]],
    ) -> None:
        self._db = db
        self._collection = collection
        self._errors = errors
        self.ready = False

    async def ensure(self) -> None:
        """Build the (non-unique) indexes once; drop our 0.1 schema's unique ``version`` index.

        An index whose key exists already is left alone, and a build the server refuses is
        logged, not raised: indexes only speed reads up, nothing relies on them.
        """
        if self.ready:
            return
        with self._errors("listing indexes"):
            try:
                existing = await self._collection.index_information()
            except pymongo.errors.OperationFailure as exc:
                # Not allowed to list them (a role without listIndexes): reads and writes are
                # still correct without our indexes.
                logger.warning(
                    "indexes of %s not checked: %s", self._collection.name, scrub(str(exc))
                )
                self.ready = True
                return
        present: set[tuple[str, ...]] = set()
        for index_name, info in existing.items():
            fields = tuple(str(k) for k, _ in info.get("key", []))
            if fields == ("version",) and info.get("unique"):
                await self.drop_unique_version_index(index_name, {"version": pymongo.ASCENDING})
                continue
            present.add(fields)
        for keys in _INDEXES:
            if tuple(k for k, _ in keys) in present:
                continue
            try:
                with self._errors("index creation"):
                    await self._collection.create_index(list(keys))
            except MirrorUnavailableError as exc:
                logger.warning("index on %s not built (reads stay correct): %s", keys, exc)
        self.ready = True

    async def drop_unique_version_index(self, index_name: str, key: Mapping[str, int]) -> None:
        # The unique version index of our 0.1 schema would refuse a second copy of a version.
        try:
            with self._errors("dropping the old unique version index"):
                await self._db.command("dropIndexes", self._collection.name, index=index_name)
            return
        except MirrorUnavailableError:
            pass  # the server may not keep names; by key below
        with self._errors("dropping the old unique version index"):
            await self._db.command("dropIndexes", self._collection.name, index=dict(key))
        logger.info("dropped the unique version index of %s", self._collection.name)
