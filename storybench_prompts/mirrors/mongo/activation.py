"""Which set is active for storybench's reader (``is_active``), kept true under racing writers.

``activate`` stamps a version's current copy with the next number of a counter
(``activation_seq``, in ``storybench_prompts_meta``); ``reconcile`` makes the current copy of the
version stamped last the only active document, activating first and then deactivating only
what ranks lower, so once anything is active something is active at every instant. The whole
invariant is explained in ``docs/architecture.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import pymongo
import pymongo.errors

from ..._exceptions import MirrorCorruptError, PromptSetNotFoundError
from ..._logs import fields, get_logger
from ...content.models import VersionedContent
from .codec import COPY_ORDER, Codec, Pick

__all__ = ["META_COLLECTION", "RANK", "ActiveSet"]

C = TypeVar("C", bound=VersionedContent)

META_COLLECTION = "storybench_prompts_meta"
# The rank given to the active document of a database storybench wrote alone (see the module
# docs): above "never activated" (0 or missing), below every number the counter hands out.
_ADOPTED_SEQ = 0.5
# The activation rank: the reconcile activates the top and deactivates only what ranks lower.
RANK = [
    ("activation_seq", pymongo.DESCENDING),
    ("sync_order", pymongo.DESCENDING),
    ("_id", pymongo.DESCENDING),
]
# What may rank: an activated document that names a version. A hand-made document without
# one (or with a string) is no set to activate, and never blocks the activation of one.
NAMED = {"version": {"$type": "number"}}
RANKED = {"activation_seq": {"$gt": 0}, **NAMED}


logger = get_logger("storybench_prompts.mirrors")


def _whole(version: Any) -> int | None:
    """A document's version as a number of ours: an int, or a whole double as mongosh and
    JavaScript write them (2.0)."""
    if type(version) is int:
        return version
    if type(version) is float and version.is_integer():
        return int(version)
    return None


def _version_of(document: Mapping[str, Any]) -> int:
    version = _whole(document.get("version"))
    if version is None:
        raise MirrorCorruptError(
            f"MongoDB document {document.get('_id')!r} was activated but its version is "
            f"{document.get('version')!r}, not a whole number",
            location=repr(document.get("_id")),
        )
    return version


class ActiveSet(Generic[C]):
    def __init__(
        self,
        db: Any,
        collection: Any,
        codec: Codec[C],
        *,
        errors: Callable[[str], contextlib.AbstractContextManager[None]],
        current: Callable[[int], Awaitable[Pick[C]]],
        find: Callable[..., Awaitable[list[dict[str, Any]]]],
    ) -> None:
        self._db = db
        self._collection = collection
        self._codec = codec
        self._errors = errors
        self._current = current
        self._find = find

    async def claim(self) -> int:
        """The next activation number (one counter per collection, shared by every process)."""
        key = {"_id": f"activation:{self._collection.name}"}
        with self._errors("claiming an activation number"):
            for _ in range(3):
                try:
                    counter = await self._db[META_COLLECTION].find_one_and_update(
                        key,
                        {"$inc": {"seq": 1}},
                        upsert=True,
                        return_document=pymongo.ReturnDocument.AFTER,
                    )
                    return int(counter["seq"])
                except pymongo.errors.DuplicateKeyError:
                    continue  # two first upserts raced; the counter exists now
            raise pymongo.errors.OperationFailure("the activation counter could not be updated")

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        """Make this version the one storybench's reader finds (``is_active: true``).

        ``only_if_none``: only when no document is active at all (what ``warm`` does).
        """
        if only_if_none:
            with self._errors("reading the active set"):
                active = await self._collection.find_one({"is_active": True, **NAMED}, {"_id": 1})
            if active is not None:
                await self.reconcile()
                return
        current = await self._current(version)
        if current.doc is None:
            raise PromptSetNotFoundError(
                f"the MongoDB mirror holds no served version {version} to activate",
                version=version,
            )
        with self._errors(f"activating version {version}"):
            top = await self._collection.find_one(RANKED, {"_id": 1}, sort=RANK)
        if top is not None and top["_id"] == current.doc["_id"] and current.doc.get("is_active"):
            # Already the active set: re-syncing claims no number and writes nothing.
            await self.reconcile()
            return
        seq = await self.claim()
        with self._errors(f"activating version {version}"):
            result = await self._collection.update_one(
                {"_id": current.doc["_id"]}, {"$max": {"activation_seq": seq}}
            )
        if result.matched_count == 0:
            raise PromptSetNotFoundError(
                f"version {version} vanished from the MongoDB mirror while activating it",
                version=version,
            )
        await self.reconcile()

    async def reconcile(self, max_rounds: int = 10) -> int | None:
        """Make the current copy of the most recently activated version the only active
        document; return its version (None when nothing was ever activated)."""
        with self._errors("reconciling the active set"):
            version: int | None = None
            for _ in range(max_rounds):
                top = await self._collection.find_one(RANKED, sort=RANK)
                if top is None:
                    if not await self._stamp_what_storybench_reads():
                        return None
                    continue
                version = _version_of(top)
                target = await self._target(top)
                if target is None:
                    continue  # a fresher number was stamped; rank again
                seq = target.get("activation_seq") or 0
                # 1. Activate first...
                if not target.get("is_active"):
                    await self._collection.update_one(
                        {"_id": target["_id"], "is_active": {"$ne": True}},
                        {"$set": {"is_active": True}},
                    )
                # 2. ...then deactivate only what ranks lower, never the top we saw.
                await self._collection.update_many(
                    {
                        "is_active": True,
                        "_id": {"$ne": target["_id"]},
                        "$or": _ranked_below(seq, target.get("sync_order"), target["_id"]),
                    },
                    {"$set": {"is_active": False}},
                )
                again = await self._collection.find_one(
                    RANKED, {"_id": 1, "activation_seq": 1}, sort=RANK
                )
                if again is None or (
                    again["_id"] == target["_id"] and again.get("activation_seq") == seq
                ):
                    await self._unflag_unranked(target["_id"])
                    return version
            return version

    async def _unflag_unranked(self, target: Any) -> None:
        """Deactivate active documents that name no version (hand-made), other than
        ``target``: storybench's reader would find one of them instead of the set. Only the
        flag changes."""
        others = await self._find(
            {"is_active": True, "_id": {"$ne": target}}, [("_id", 1)], {"_id": 1, "version": 1}
        )
        for other in others:
            if _whole(other.get("version")) is None:
                logger.warning(
                    "MongoDB document %r is active but names no version: deactivated",
                    other["_id"],
                    extra=fields(source="mongodb"),
                )
                await self._collection.update_one(
                    {"_id": other["_id"]}, {"$set": {"is_active": False}}
                )

    async def _stamp_what_storybench_reads(self) -> bool:
        """Nothing was activated through us: adopt the document storybench's reader finds.

        A database written by storybench alone may hold several active documents; the one its
        reader returns now is kept, stamped with ``_ADOPTED_SEQ`` so that it ranks above the
        rest, which the reconcile then deactivates. Returns False when none is active.
        """
        chosen = await self._collection.find_one({"is_active": True, **NAMED}, {"_id": 1})
        if chosen is None:
            await self._unflag_unranked(None)
            return False
        await self._collection.update_one(
            {"_id": chosen["_id"]}, {"$max": {"activation_seq": _ADOPTED_SEQ}}
        )
        return True

    async def _target(self, top: dict[str, Any]) -> dict[str, Any] | None:
        """The document that should be active for the top's version: its current copy.

        The current copy inherits the top's number when it ranks above the top anyway (it was
        synced later), so no rank ever decreases. Otherwise it needs a fresh number, taken only
        if no newer activation was claimed meanwhile; None means "rank again".
        """
        seq = top["activation_seq"]
        pick = self._codec.pick(await self._find({"version": top["version"]}, COPY_ORDER))
        target = pick.doc
        if target is None or target["_id"] == top["_id"]:
            return top  # nothing servable (withdrawn, corrupt, storybench's own): keep the top
        if _synced_later(target, top):
            await self._collection.update_one(
                {"_id": target["_id"]}, {"$max": {"activation_seq": seq}}
            )
            return {**target, "activation_seq": max(seq, target.get("activation_seq") or 0)}
        if not isinstance(seq, int):
            return top  # an adopted storybench document: only a real activation replaces it
        counter = await self._db[META_COLLECTION].find_one_and_update(
            {"_id": f"activation:{self._collection.name}", "seq": seq},
            {"$inc": {"seq": 1}},
            return_document=pymongo.ReturnDocument.AFTER,
        )
        if counter is None:
            return top  # a newer activation is under way; it will settle this
        await self._collection.update_one(
            {"_id": target["_id"]}, {"$max": {"activation_seq": int(counter["seq"])}}
        )
        return None


def _synced_later(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    sa, sb = a.get("sync_order"), b.get("sync_order")
    if not isinstance(sa, int):
        return False
    return not isinstance(sb, int) or sa > sb


def _ranked_below(seq: float, order: Any, doc_id: Any) -> list[dict[str, Any]]:
    """A filter for documents that rank strictly below (seq, sync_order, _id) in ``RANK``."""
    clauses: list[dict[str, Any]] = [
        {"activation_seq": {"$lt": seq}},
        {"activation_seq": {"$exists": False}},  # storybench's own, never stamped
    ]
    if isinstance(order, int):
        clauses += [
            {"activation_seq": seq, "sync_order": {"$lt": order}},
            {"activation_seq": seq, "sync_order": {"$exists": False}},
            {"activation_seq": seq, "sync_order": order, "_id": {"$lt": doc_id}},
        ]
    else:
        # Adopted storybench documents tie on the number; the higher _id ranks first. ``$lt``
        # compares ids of one BSON type only, which is all such a tie can hold.
        clauses.append(
            {"activation_seq": seq, "sync_order": {"$exists": False}, "_id": {"$lt": doc_id}}
        )
    return clauses
