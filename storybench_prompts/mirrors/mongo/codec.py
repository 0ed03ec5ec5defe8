"""Our MongoDB documents: what a stored document holds, whether it may be served, which copy
of a version is current. No I/O: the mirror reads, this decides."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pymongo

from ..._exceptions import InvalidPromptSetError, MirrorCorruptError, PromptSetNotFoundError
from ..._logs import get_logger
from ...content.kinds import ContentKind
from ...content.models import Provenance, VersionedContent
from .. import integrity

__all__ = ["COPY_ORDER", "SCHEMA_VERSION", "SERVED", "Codec", "Pick", "iso"]

logger = get_logger("storybench_prompts.mirrors", source="mongodb")

C = TypeVar("C", bound=VersionedContent)

SCHEMA_VERSION = 2

# Per version, the copy synced last first. ``sync_order`` is an integer (microseconds since
# the epoch, and above every earlier copy of the version) rather than the ``synced_at`` date:
# nx-27017 stores a date written by ``$set`` as a string, which would sort apart from dates.
# Documents without it (storybench's own, our 0.1 ones) sort last.
COPY_ORDER = [("sync_order", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]
# Not withdrawn: ``{field: None}`` matches a missing field (and an explicit null) on MongoDB
# and on nx-27017 alike; we never write null there, we ``$unset``.
SERVED = {"withdrawn_at": None, "schema_version": {"$exists": True}}


def _utc(value: Any) -> Any:
    # A client without tz_aware=True returns naive datetimes, which are UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _timestamp(value: Any) -> datetime | None:
    """A stored date as an aware datetime (nx-27017 returns dates written by ``$set`` as text)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return _utc(value) if isinstance(value, datetime) else None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class Pick(Generic[C]):
    """The copies of one version, sorted: the servable one read first, and why others failed."""

    doc: dict[str, Any] | None = None
    content: C | None = None
    corrupt: list[MirrorCorruptError] = field(default_factory=list)
    legacy: int = 0
    withdrawn: int = 0
    newest: dict[str, Any] | None = None
    """The copy synced last, servable or not."""
    top_order: int = 0
    """The highest ``sync_order`` among the copies."""


class Codec(Generic[C]):
    """Decodes and checks the documents of one kind's collection."""

    def __init__(self, kind: ContentKind[C], where: str, collection_name: str) -> None:
        self._kind = kind
        self._where = where
        self._collection_name = collection_name

    def location(self, document: Mapping[str, Any]) -> str:
        return f"{self._where} {self._collection_name}/{document.get('_id')}"

    def decode(self, document: Mapping[str, Any]) -> C:
        """The checked set this document holds, or :class:`MirrorCorruptError`."""
        location = self.location(document)
        if "schema_version" not in document:
            raise MirrorCorruptError(
                f"MongoDB document {location} was written by storybench itself and cannot be "
                "verified (it does not store the Directus id its hash covers); it is kept but "
                "not served. Syncing that version from Directus upgrades it.",
                location=location,
            )
        data = {
            **document,
            "created_at": _utc(document.get("source_created_at")),
            "updated_at": _utc(document.get("source_updated_at")),
            "published_at": _utc(document.get("source_published_at")),
        }
        try:
            content = self._kind.from_storybench(data, context=location)
        except InvalidPromptSetError as exc:
            raise MirrorCorruptError(
                f"MongoDB document {location} is invalid: {exc}", location=location
            ) from exc
        stored_full = document.get("content_hash")
        # The content was rebuilt from the document, so its hash is computed afresh: a re-hash.
        if document.get("config_hash") != content.config_hash or stored_full not in (
            None,
            content.content_hash,
        ):
            raise integrity.mismatch(
                location,
                document.get("config_hash"),
                content.config_hash,
                what=f"MongoDB document {location}",
            )
        fetched = (
            _timestamp(document.get("fetched_at"))
            or _timestamp(document.get("synced_at"))
            or _timestamp(document.get("created_at"))
        )
        fetched_epoch = fetched.timestamp() if fetched is not None else time.time()
        return content.with_provenance(
            Provenance(source="mirror", origin="directus", fetched_at_epoch=fetched_epoch)
        )

    def pick(self, documents: Sequence[dict[str, Any]]) -> Pick[C]:
        """The first servable document of copies sorted by ``_COPY_ORDER``."""
        orders = [d.get("sync_order") for d in documents]
        pick: Pick[C] = Pick(
            newest=documents[0] if documents else None,
            top_order=max((o for o in orders if isinstance(o, int)), default=0),
        )
        for document in documents:
            if document.get("withdrawn_at"):
                pick.withdrawn += 1
            elif "schema_version" not in document:
                pick.legacy += 1
            else:
                try:
                    pick.content = self.decode(document)
                except MirrorCorruptError as exc:
                    integrity.warn_once(str(exc), f"not serving {exc}")
                    pick.corrupt.append(exc)
                    continue
                pick.doc = document
                return pick
        return pick

    def not_served(self, version: int, pick: Pick[C]) -> PromptSetNotFoundError:
        if pick.withdrawn:
            why = f"version {version} was withdrawn (Directus no longer publishes it)"
        elif pick.legacy:
            why = (
                f"only storybench's own documents of version {version}, which cannot be "
                "verified; a sync from Directus upgrades them"
            )
        else:
            why = f"no version {version}"
        return PromptSetNotFoundError(f"the MongoDB mirror holds {why}", version=version)

    def holds(self, document: Mapping[str, Any], content: C) -> bool:
        """Whether this document's content is exactly ``content`` (ours, 0.1's or storybench's).

        storybench's documents lack ``directus_id``; the content's own fills it in, so the hash
        check is the one storybench made when it wrote them.
        """
        data = {**document, "created_at": None, "updated_at": None, "published_at": None}
        if "directus_id" not in document:
            data["directus_id"] = content.directus_id
        try:
            candidate = self._kind.from_storybench(data, context=self.location(document))
        except InvalidPromptSetError:
            return False
        return (
            candidate.content_hash == content.content_hash
            and document.get("config_hash") == content.config_hash
        )
