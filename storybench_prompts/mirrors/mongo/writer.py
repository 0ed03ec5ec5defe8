"""Saving to the MongoDB mirror: content-addressed, never overwriting content or deleting.

Our documents use the ``config_hash`` as ``_id``, so two processes saving the same content at
once end with one document (the loser of the insert updates the winner's metadata); a save
never changes a document's content, ``created_at`` or ``is_active``, except to put back a
document of ours edited by hand; a storybench document of the same content is upgraded in
place with our metadata. Every save ends with the activation reconcile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pymongo.errors

from ..._exceptions import MirrorUnavailableError
from ...content.models import VersionedContent
from ..base import SaveOutcome
from .codec import COPY_ORDER, SCHEMA_VERSION, Codec, Pick, iso

__all__ = ["Writer"]

C = TypeVar("C", bound=VersionedContent)


class Writer(Generic[C]):
    def __init__(
        self,
        collection: Any,
        codec: Codec[C],
        *,
        where: str,
        errors: Callable[[str], contextlib.AbstractContextManager[None]],
        current: Callable[[int], Awaitable[Pick[C]]],
        find: Callable[..., Awaitable[list[dict[str, Any]]]],
        reconcile: Callable[[], Awaitable[int | None]],
    ) -> None:
        self._collection = collection
        self._codec = codec
        self._where = where
        self._errors = errors
        self._current = current
        self._find = find
        self._reconcile = reconcile

    async def save(self, content: C) -> SaveOutcome:
        """Store a validated copy as the current one for its version; see the module docs.

        Writes nothing when the current copy has the same hash.
        """
        version = content.version
        config_hash = content.config_hash
        current = await self._current(version)
        if current.content is not None and current.content.config_hash == config_hash:
            # Nothing to write, but a sync that died before activating left work to finish.
            await self._reconcile()
            return "unchanged"
        provenance = content.provenance
        fresh = provenance is None or provenance.source == "directus"
        # Content that did not come from Directus now does not republish a withdrawn version.
        keep_withdrawn = not fresh and bool(current.newest and current.newest.get("withdrawn_at"))
        now = datetime.now(UTC)
        # Above every copy seen, so the copy saved now is read first even if clocks disagree.
        sync_order = max(time.time_ns() // 1000, current.top_order + 1)
        fetched_at = (
            datetime.fromtimestamp(provenance.fetched_at_epoch, tz=UTC) if provenance else now
        )
        metadata: dict[str, Any] = {
            "version_name": content.version_name,
            "directus_id": content.directus_id,
            "content_hash": content.content_hash,
            "source_created_at": iso(content.created_at),
            "source_updated_at": iso(content.updated_at),
            "source_published_at": iso(content.published_at),
            "fetched_at": fetched_at,
            "synced_at": now,
            "sync_order": sync_order,
            "schema_version": SCHEMA_VERSION,
        }
        if keep_withdrawn:
            update: dict[str, Any] = {"$set": {**metadata, "withdrawn_at": now}}
        else:
            update = {"$set": metadata, "$unset": {"withdrawn_at": ""}}
        where = f"saving version {version}"
        with self._errors(where):
            same_hash = await self._find({"config_hash": config_hash}, COPY_ORDER)
            matching = [d for d in same_hash if self._codec.holds(d, content)]
            for document in matching:
                # Ours, or storybench's upgraded in place: metadata only, never the content.
                await self._collection.update_one({"_id": document["_id"]}, update)
            if not matching:
                await self._insert(content, metadata, now, keep_withdrawn, update)
        await self._reconcile()
        if keep_withdrawn:
            return "unchanged"
        return "new" if current.content is None and not current.corrupt else "updated"

    async def _insert(
        self,
        content: C,
        metadata: dict[str, Any],
        now: datetime,
        keep_withdrawn: bool,
        update: dict[str, Any],
    ) -> None:
        document: dict[str, Any] = {
            "_id": content.config_hash,
            "config_hash": content.config_hash,
            "version": content.version,
            **content.body(),
            "created_at": now,
            # A new document starts inactive and never activated: activation is activate()'s
            # and reconcile()'s job.
            "is_active": False,
            "activation_seq": 0,
            **metadata,
        }
        if keep_withdrawn:
            document["withdrawn_at"] = now
        try:
            await self._collection.insert_one(document)
            return
        except pymongo.errors.DuplicateKeyError:
            pass
        # Another process inserted this hash first, or our document of this hash was edited
        # by hand. Its content is, by its _id, exactly this content: restore it, touching
        # neither created_at nor is_active.
        restore = {
            **update,
            "$set": {
                **update["$set"],
                **content.body(),
                "config_hash": content.config_hash,
                "version": content.version,
            },
        }
        result = await self._collection.update_one({"_id": content.config_hash}, restore)
        if result.matched_count == 0:
            raise MirrorUnavailableError(
                f"MongoDB refused a second copy of version {content.version} in "
                f"{self._collection.name} at {self._where}: a unique index on 'version' "
                "(from storybench-prompts 0.1) is still there and could not be dropped"
            )
