"""The MongoDB mirror, in storybench's own document shape (PyMongo async; motor accepted).

The documents and their rules are ``codec``'s, which set is active is ``activation``'s, the
indexes are ``indexes``'s, reading is ``reader``'s and saving ``writer``'s; this module
connects and composes them. ``docs/architecture.md`` describes
the document shape, content addressing and the activation invariant.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pymongo
import pymongo.errors
from pymongo import AsyncMongoClient

from ..._closing import Closeable
from ..._defaults import (
    DEFAULT_DATABASE,
    DEFAULT_SERVER_SELECTION_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
)
from ..._defaults import DEFAULT_MONGO_CONNECT_TIMEOUT as DEFAULT_CONNECT_TIMEOUT
from ..._exceptions import (
    ConfigurationError,
    PromptSetNotFoundError,
)
from ..._redact import redact_uri
from ...content.kinds import ContentKind
from ...content.models import VersionedContent, VersionInfo
from ..base import SaveOutcome
from .activation import RANK, ActiveSet
from .codec import Codec, Pick
from .errors import map_pymongo_errors
from .indexes import Indexes
from .reader import Reader
from .writer import Writer

__all__ = ["MongoMirror"]

C = TypeVar("C", bound=VersionedContent)
D = TypeVar("D", bound=VersionedContent)


class MongoMirror(Generic[C], Closeable):
    """Sets of one content kind in MongoDB, readable by storybench. Implements ``PromptMirror``.

    Give either ``uri`` (default ``MONGODB_URI``) or ``database``, an already-open PyMongo
    ``AsyncDatabase`` or motor ``AsyncIOMotorDatabase``; an injected database is not closed by
    :meth:`aclose`. :meth:`for_kind` gives a mirror of another kind on the same connection.
    """

    name = "mongodb"

    def __init__(
        self,
        uri: str | None = None,
        *,
        database: Any = None,
        kind: ContentKind[C],
        database_name: str = DEFAULT_DATABASE,
        collection_name: str | None = None,
        server_selection_timeout: float = DEFAULT_SERVER_SELECTION_TIMEOUT,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        where: str | None = None,
    ) -> None:
        self.kind: ContentKind[C] = kind
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._owns_client = False
        if database is not None:
            self._db = database
            self._where = where or f"injected database {getattr(database, 'name', '?')!r}"
        else:
            uri = uri if uri is not None else os.environ.get("MONGODB_URI")
            if not uri:
                raise ConfigurationError("MongoDB URI missing: set MONGODB_URI or pass uri=")
            self._where = redact_uri(uri)
            selection = _milliseconds("server_selection_timeout", server_selection_timeout)
            socket = _milliseconds("socket_timeout", socket_timeout)
            connect = _milliseconds("connect_timeout", connect_timeout)
            try:
                self._client = AsyncMongoClient(
                    uri,
                    serverSelectionTimeoutMS=selection,
                    socketTimeoutMS=socket,
                    connectTimeoutMS=connect,
                    timeoutMS=None,
                    tz_aware=True,
                    appname="storybench-prompts",
                )
            except (pymongo.errors.ConfigurationError, ValueError, TypeError) as exc:
                raise ConfigurationError(
                    f"MONGODB_URI is not a valid MongoDB URI ({type(exc).__name__})"
                ) from None
            self._owns_client = True
            self._db = self._client[database_name]
        self._collection = self._db[collection_name or kind.mongo_collection]
        self._codec: Codec[C] = Codec(kind, self._where, self._collection.name)
        self._reader: Reader[C] = Reader(self._collection, self._codec, kind, self._errors)
        self.indexes = Indexes(self._db, self._collection, self._errors)
        self.active_set: ActiveSet[C] = ActiveSet(
            self._db,
            self._collection,
            self._codec,
            errors=self._errors,
            current=self._current,
            find=self._reader.find,
        )
        self._writer: Writer[C] = Writer(
            self._collection,
            self._codec,
            where=self._where,
            errors=self._errors,
            current=self._current,
            find=self._reader.find,
            reconcile=self.active_set.reconcile,
        )

    def for_kind(self, kind: ContentKind[D]) -> MongoMirror[D]:
        """A mirror of ``kind`` on the same connection and database (its own collection).

        Its :meth:`aclose` leaves the shared connection open; close this mirror for that.
        """
        sibling: MongoMirror[D] = MongoMirror(database=self._db, kind=kind, where=self._where)
        return sibling

    def __repr__(self) -> str:
        return f"MongoMirror({self._where}, collection={self._collection.name!r})"

    @property
    def location(self) -> str:
        """Where the copies are, for a person (the password masked)."""
        return f"MongoDB mirror {self._where}, collection {self._collection.name}"

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.close()

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return map_pymongo_errors(what, self._where)

    async def ensure_indexes(self) -> None:
        """Build the (non-unique) indexes once (see ``indexes``)."""
        await self.indexes.ensure()

    async def _current(self, version: int) -> Pick[C]:
        return await self._reader.current(version)

    # -- reading ---------------------------------------------------------------------------

    async def get(self, version: int) -> C:
        pick = await self._current(version)
        if pick.content is not None:
            return pick.content
        if pick.corrupt:
            raise pick.corrupt[0]
        raise self._codec.not_served(version, pick)

    async def latest(self) -> C:
        found = await self._reader.servable_by_version(
            pymongo.DESCENDING, stop_at_first=True, raise_corrupt=True
        )
        if not found:
            raise PromptSetNotFoundError(f"the MongoDB mirror holds no served {self.kind.noun}")
        return found[0]

    async def versions(self) -> list[VersionInfo]:
        found = await self._reader.servable_by_version(
            pymongo.ASCENDING, stop_at_first=False, raise_corrupt=False
        )
        return [content.info() for content in found]

    async def active(self) -> C:
        """What storybench's own reader sees: the document with ``is_active: true``."""
        with self._errors("reading the active set"):
            document = await self._collection.find_one({"is_active": True}, sort=RANK)
        if document is None:
            raise PromptSetNotFoundError(f"the MongoDB mirror has no active {self.kind.noun}")
        return self._codec.decode(document)

    async def stored_hash(self, version: int) -> str | None:
        pick = await self._current(version)
        return pick.content.config_hash if pick.content is not None else None

    async def withdrawn_versions(self) -> list[VersionInfo]:
        """The versions kept only as records (every copy withdrawn), with the hash each
        last held."""
        served = {info.version for info in await self.versions()}
        return await self._reader.withdrawn_versions(served)

    async def hashes_with_prefix(self, prefix: str) -> list[str]:
        """Every ``config_hash`` the collection holds that starts with ``prefix`` (hex),
        sorted; for resolving a short hash as git does."""
        return await self._reader.hashes_with_prefix(prefix)

    async def get_by_hash(self, config_hash: str) -> C:
        return await self._reader.get_by_hash(config_hash)

    # -- writing ---------------------------------------------------------------------------

    async def save(self, content: C) -> SaveOutcome:
        """Store a validated copy as the current one for its version (see ``writer``).

        Writes nothing when the current copy has the same hash.
        """
        if not isinstance(content, self.kind.model):
            raise TypeError(f"this mirror holds {self.kind.noun}s, not {type(content).__name__}")
        self.kind.ensure_valid(content)
        await self.ensure_indexes()
        return await self._writer.save(content)

    # -- withdrawal and activation ---------------------------------------------------------

    async def withdraw(self, version: int) -> bool:
        """Mark every copy of this version withdrawn (kept as records, never served)."""
        with self._errors(f"withdrawing version {version}"):
            result = await self._collection.update_many(
                {"version": int(version), "withdrawn_at": None},
                {"$set": {"withdrawn_at": datetime.now(UTC)}},
            )
        active = await self.reconcile()
        if active == int(version):
            remaining = [
                v
                for v in await self._reader.servable_by_version(
                    pymongo.DESCENDING, stop_at_first=False, raise_corrupt=False
                )
                if v.version != int(version)
            ]
            if remaining:
                # activate() stamps the new one first; the reconcile then deactivates this one.
                await self.activate(remaining[0].version)
        return bool(result.modified_count)

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        """Make this version the one storybench's reader finds (``is_active: true``).

        ``only_if_none``: only when no document is active at all (what ``warm`` does).
        """
        await self.active_set.activate(version, only_if_none=only_if_none)

    async def reconcile(self) -> int | None:
        """Make the current copy of the most recently activated version the only active
        document; return its version (None when nothing was ever activated)."""
        return await self.active_set.reconcile()

    # -- health ----------------------------------------------------------------------------

    async def check_writable(self) -> None:
        await self.ensure_indexes()
        probe = f"write-probe-{os.getpid()}-{time.monotonic_ns()}"
        with self._errors("the write check"):
            probes = self._db["storybench_prompts_probe"]
            await probes.insert_one({"_id": probe})
            await probes.delete_one({"_id": probe})

    async def ping(self) -> None:
        with self._errors("ping"):
            await self._db.command("ping")


def _milliseconds(name: str, seconds: float) -> int:
    """A timeout as PyMongo takes it, or :class:`ConfigurationError` naming it."""
    if not 0 < seconds <= 86_400:  # NaN fails this too
        raise ConfigurationError(
            f"the MongoDB {name} must be more than 0 and at most 86400 seconds, not {seconds!r}"
        )
    return int(seconds * 1000)
