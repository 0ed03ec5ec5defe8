"""The MongoDB mirror, in storybench's own document shape (PyMongo async; motor accepted).

One collection per content kind (``prompts`` for prompt sets, ``evaluation_criteria`` for
evaluation sets) in database ``storybench``. storybench's reader
(``find_one({"is_active": True})``) keeps working unchanged.

**Content addressing.** As storybench's own ``sync-prompts`` does, the collection holds one
document per ``config_hash``, several per version when a version was edited, and keeps the old
ones: an evaluation records the ``config_hash`` it ran, so an old document is the record of
what a past run used. Our documents use the hash as ``_id``, so two processes saving the same
content at once end with one document (the loser of the insert updates the winner's
metadata). A save never changes the content of a document, never deletes one, and never
touches a document's ``created_at``; the one exception is a document of ours edited by hand,
whose content is put back to what its ``_id`` names. Our document::

    {_id: config_hash, config_hash, version, <content>, created_at, is_active,  # storybench's
     version_name, directus_id, content_hash, source_created_at, source_updated_at,
     fetched_at, synced_at, sync_order, activation_seq, withdrawn_at,
     schema_version}                                                         # ours

where ``<content>`` is the kind's body (``sequences``; or ``criteria`` and
``scoring_guidelines``). Source dates are stored as ISO strings so they read back exactly.

**storybench's own documents** (``ObjectId`` ``_id``; only ``config_hash``, ``version``, the
content, ``created_at`` and ``is_active``) are kept. storybench's hash covers the Directus id,
which it does not store, so such a document cannot be verified and is *never served*; it
stays in place as a record. Saving content whose hash matches one of them upgrades that
document in place: our metadata fields are ``$set`` (``directus_id`` among them, which makes it
verifiable); its content, ``created_at`` and ``is_active`` are left alone.

**Reading.** Every served document is decoded with the kind's content rules and its stored
``config_hash`` (and ``content_hash``) checked against its content; one that fails is a
:class:`MirrorCorruptError` and is never served. Per version, reads serve the servable copy
synced last (``sync_order`` descending). :meth:`get_by_hash` serves exactly the content saved
under a hash, withdrawn or not.

**Withdrawal.** :meth:`withdraw` stamps every copy of a version with ``withdrawn_at`` (nothing
is deleted); ``get``, ``latest``, ``versions`` and ``stored_hash`` never serve it. A later save
of that version's content fresh from Directus (it is published again) clears the stamp on the
copy it saved; a save of content that did not come from Directus keeps the version withdrawn.

**Which set is active.** As with storybench's ``sync-prompts``, storybench's reader finds the
version last *activated*: :meth:`activate` (what ``sync`` does) stamps the version's current
copy with the next number of a counter (``activation_seq``, in ``storybench_prompts_meta``).
:meth:`save` never changes which version is active and never activates one when none is:
``activate(v, only_if_none=True)`` (what ``warm`` does) activates ``v`` only when no document
is active. Activation belongs to a version: when a newer copy of the active version is saved,
the flag moves to that copy (it inherits the ``activation_seq``), so storybench runs the
content Directus publishes now. When the active version is withdrawn, the highest version
still served becomes active; when there is none, the withdrawn one stays active (never zero).

**Activation invariant.** *Once any document is active, at least one is active at every
instant*, and at rest exactly one is: the current copy of the version with the highest
``activation_seq``. Every write ends with :meth:`reconcile`, which (1) activates that copy, then
(2) deactivates only documents ranked *lower* (by ``activation_seq``, then ``sync_order``, neither
of which ever decreases), then re-reads the top and repeats if it changed. Activation precedes
deactivation and nobody deactivates the top they saw, so a reader between any two writes finds
one or two active documents, never zero; a sync killed between its writes leaves the previous
document active and the next write finishes the job; racing syncs converge on the most recent
activation. A database written by storybench alone may hold several active documents and no
``activation_seq``: the reconcile keeps the one storybench's reader finds now, stamping it with
``activation_seq: 0.5`` before deactivating the rest (below every number the counter hands
out, so a real activation always outranks it, even one claimed a moment earlier and not yet
stamped; ties among such documents go to the higher ``_id``). An activation made afterwards by
storybench's own ``sync-prompts`` is not seen as one (it writes no ``activation_seq``); use
``sync`` instead.

**Existing databases need no migration.** Only non-unique indexes are built; an index whose key
already exists is left as it is; the unique ``version`` index of our 0.1 schema (one document
per version) is dropped, found by its key because some servers do not keep index names. Our
0.1 documents (``ObjectId`` ``_id``, with our metadata) are served like ours.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import bson.errors
import pymongo
import pymongo.errors
from pymongo import AsyncMongoClient

from .._defaults import (
    DEFAULT_DATABASE,
    DEFAULT_SERVER_SELECTION_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
)
from .._defaults import DEFAULT_MONGO_CONNECT_TIMEOUT as DEFAULT_CONNECT_TIMEOUT
from .._exceptions import (
    ConfigurationError,
    InvalidPromptSetError,
    MirrorCorruptError,
    MirrorUnavailableError,
    PromptSetNotFoundError,
)
from .._redact import redact_uri
from ..content.kinds import ContentKind
from ..content.models import Provenance, VersionedContent, VersionInfo
from .base import SaveOutcome

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_SERVER_SELECTION_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "MongoMirror",
    "map_pymongo_errors",
    "redact_uri",
]

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=VersionedContent)
D = TypeVar("D", bound=VersionedContent)

SCHEMA_VERSION = 2
META_COLLECTION = "storybench_prompts_meta"
# The rank given to the active document of a database storybench wrote alone (see the module
# docs): above "never activated" (0 or missing), below every number the counter hands out.
_ADOPTED_SEQ = 0.5

# Per version, the copy synced last first. ``sync_order`` is an integer (microseconds since
# the epoch, and above every earlier copy of the version) rather than the ``synced_at`` date:
# nx-27017 stores a date written by ``$set`` as a string, which would sort apart from dates.
# Documents without it (storybench's own, our 0.1 ones) sort last.
_COPY_ORDER = [("sync_order", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]
# The activation rank: the reconcile activates the top and deactivates only what ranks lower.
_RANK = [
    ("activation_seq", pymongo.DESCENDING),
    ("sync_order", pymongo.DESCENDING),
    ("_id", pymongo.DESCENDING),
]
# Non-unique on purpose: an existing storybench collection may hold anything, and no index
# build may fail on it. Uniqueness of a hash comes from ``_id``.
_INDEXES: tuple[tuple[tuple[str, int], ...], ...] = (
    (("config_hash", pymongo.ASCENDING),),
    (("version", pymongo.ASCENDING), ("sync_order", pymongo.DESCENDING)),
    (("is_active", pymongo.ASCENDING),),
    (("activation_seq", pymongo.DESCENDING),),
)
# Not withdrawn: ``{field: None}`` matches a missing field (and an explicit null) on MongoDB
# and on nx-27017 alike; we never write null there, we ``$unset``.
_SERVED = {"withdrawn_at": None, "schema_version": {"$exists": True}}


@contextlib.contextmanager
def map_pymongo_errors(what: str, where: str) -> Iterator[None]:
    """Turn the driver's errors into ours. Messages never include the URI's credentials.

    BSON's ``InvalidDocument`` and ``DocumentTooLarge`` are not ``PyMongoError`` subclasses,
    nor is the ``OverflowError`` of an integer wider than 8 bytes; they are mapped too, so
    nothing from the driver escapes untyped.
    """
    try:
        yield
    except pymongo.errors.OperationFailure as exc:
        raise MirrorUnavailableError(
            f"MongoDB refused {what} at {where}: code {exc.code}: {_scrub(str(exc))}"
        ) from None
    except pymongo.errors.PyMongoError as exc:
        # Timeouts, refused connections, server selection failures: all mean "cannot answer".
        raise MirrorUnavailableError(
            f"MongoDB unavailable for {what} at {where}: {type(exc).__name__}: {_scrub(str(exc))}"
        ) from None
    except (bson.errors.BSONError, OverflowError) as exc:
        # OverflowError: BSON's integers are 8 bytes at most ("can only handle up to 8-byte ints").
        raise MirrorUnavailableError(
            f"MongoDB cannot store or read {what} at {where}: {type(exc).__name__}: "
            f"{_scrub(str(exc))}"
        ) from None


def _scrub(text: str) -> str:
    # PyMongo's messages name hosts, not credentials; cut them short all the same.
    first = text.split(", Timeout:")[0]
    return first[:300]


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class _Pick(Generic[C]):
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


class MongoMirror(Generic[C]):
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
    ) -> None:
        self.kind: ContentKind[C] = kind
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._owns_client = False
        if database is not None:
            self._db = database
            self._where = f"injected database {getattr(database, 'name', '?')!r}"
        else:
            uri = uri if uri is not None else os.environ.get("MONGODB_URI")
            if not uri:
                raise ConfigurationError("MongoDB URI missing: set MONGODB_URI or pass uri=")
            self._where = redact_uri(uri)
            try:
                self._client = AsyncMongoClient(
                    uri,
                    serverSelectionTimeoutMS=int(server_selection_timeout * 1000),
                    socketTimeoutMS=int(socket_timeout * 1000),
                    connectTimeoutMS=int(connect_timeout * 1000),
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
        self._indexes_ready = False

    def for_kind(self, kind: ContentKind[D]) -> MongoMirror[D]:
        """A mirror of ``kind`` on the same connection and database (its own collection).

        Its :meth:`aclose` leaves the shared connection open; close this mirror for that.
        """
        sibling: MongoMirror[D] = MongoMirror(database=self._db, kind=kind)
        sibling._where = self._where
        return sibling

    def __repr__(self) -> str:
        return f"MongoMirror({self._where}, collection={self._collection.name!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.close()

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return map_pymongo_errors(what, self._where)

    @property
    def _noun(self) -> str:
        return self.kind.noun

    async def _find(
        self,
        query: Mapping[str, Any],
        sort: Sequence[tuple[str, int]],
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return [d async for d in self._collection.find(query, projection, sort=sort)]

    # -- indexes ---------------------------------------------------------------------------

    async def ensure_indexes(self) -> None:
        """Build the (non-unique) indexes once; drop our 0.1 schema's unique ``version`` index.

        An index whose key exists already is left alone, and a build the server refuses is
        logged, not raised: indexes only speed reads up, nothing relies on them.
        """
        if self._indexes_ready:
            return
        with self._errors("listing indexes"):
            try:
                existing = await self._collection.index_information()
            except pymongo.errors.OperationFailure as exc:
                # Not allowed to list them (a role without listIndexes): reads and writes are
                # still correct without our indexes.
                logger.warning(
                    "indexes of %s not checked: %s", self._collection.name, _scrub(str(exc))
                )
                self._indexes_ready = True
                return
        present: set[tuple[str, ...]] = set()
        for index_name, info in existing.items():
            fields = tuple(str(k) for k, _ in info.get("key", []))
            if fields == ("version",) and info.get("unique"):
                await self._drop_index(index_name, {"version": pymongo.ASCENDING})
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
        self._indexes_ready = True

    async def _drop_index(self, index_name: str, key: Mapping[str, int]) -> None:
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

    # -- decoding --------------------------------------------------------------------------

    def _location(self, document: Mapping[str, Any]) -> str:
        return f"{self._where} {self._collection.name}/{document.get('_id')}"

    def _decode(self, document: Mapping[str, Any]) -> C:
        """The checked set this document holds, or :class:`MirrorCorruptError`."""
        location = self._location(document)
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
        }
        try:
            content = self.kind.from_storybench(data, context=location)
        except InvalidPromptSetError as exc:
            raise MirrorCorruptError(
                f"MongoDB document {location} is invalid: {exc}", location=location
            ) from exc
        stored_full = document.get("content_hash")
        if document.get("config_hash") != content.config_hash or stored_full not in (
            None,
            content.content_hash,
        ):
            raise MirrorCorruptError(
                f"MongoDB document {location} was changed after it was written: stored hash "
                f"{document.get('config_hash')!r}, content hash {content.config_hash!r}",
                location=location,
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

    def _pick(self, documents: Sequence[dict[str, Any]]) -> _Pick[C]:
        """The first servable document of copies sorted by ``_COPY_ORDER``."""
        orders = [d.get("sync_order") for d in documents]
        pick: _Pick[C] = _Pick(
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
                    pick.content = self._decode(document)
                except MirrorCorruptError as exc:
                    logger.warning("not serving %s", exc)
                    pick.corrupt.append(exc)
                    continue
                pick.doc = document
                return pick
        return pick

    async def _current(self, version: int) -> _Pick[C]:
        with self._errors(f"reading version {version}"):
            documents = await self._find({"version": int(version)}, _COPY_ORDER)
        return self._pick(documents)

    def _not_served(self, version: int, pick: _Pick[C]) -> PromptSetNotFoundError:
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

    # -- reading ---------------------------------------------------------------------------

    async def get(self, version: int) -> C:
        pick = await self._current(version)
        if pick.content is not None:
            return pick.content
        if pick.corrupt:
            raise pick.corrupt[0]
        raise self._not_served(version, pick)

    async def _servable_by_version(
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
            pick = self._pick(group)
            group.clear()
            if pick.content is not None:
                out.append(pick.content)
                return stop_at_first
            if pick.corrupt and raise_corrupt:
                raise pick.corrupt[0]
            return False

        with self._errors(f"listing {self._noun}s"):
            cursor = self._collection.find(_SERVED, sort=[("version", direction), *_COPY_ORDER])
            try:
                async for document in cursor:
                    new_version = bool(group) and group[0].get("version") != document["version"]
                    if new_version and close_group():
                        return out
                    group.append(document)
            finally:
                closing = cursor.close()  # a coroutine with PyMongo, a future with motor
                if inspect.isawaitable(closing):
                    await closing
        close_group()
        return out

    async def latest(self) -> C:
        found = await self._servable_by_version(
            pymongo.DESCENDING, stop_at_first=True, raise_corrupt=True
        )
        if not found:
            raise PromptSetNotFoundError(f"the MongoDB mirror holds no served {self._noun}")
        return found[0]

    async def versions(self) -> list[VersionInfo]:
        found = await self._servable_by_version(
            pymongo.ASCENDING, stop_at_first=False, raise_corrupt=False
        )
        return [content.info() for content in found]

    async def active(self) -> C:
        """What storybench's own reader sees: the document with ``is_active: true``."""
        with self._errors("reading the active set"):
            document = await self._collection.find_one({"is_active": True}, sort=_RANK)
        if document is None:
            raise PromptSetNotFoundError(f"the MongoDB mirror has no active {self._noun}")
        return self._decode(document)

    async def stored_hash(self, version: int) -> str | None:
        pick = await self._current(version)
        return pick.content.config_hash if pick.content is not None else None

    async def get_by_hash(self, config_hash: str) -> C:
        with self._errors(f"reading hash {config_hash!r}"):
            documents = await self._find({"config_hash": str(config_hash)}, _COPY_ORDER)
        # Our own document (``_id`` is the hash) first.
        documents.sort(key=lambda d: d.get("_id") != config_hash)
        corrupt: list[MirrorCorruptError] = []
        for document in documents:
            if "schema_version" not in document:
                continue
            try:
                return self._decode(document)
            except MirrorCorruptError as exc:
                corrupt.append(exc)
        if corrupt:
            raise corrupt[0]
        legacy = " (only storybench's own document, which cannot be verified)" if documents else ""
        raise PromptSetNotFoundError(
            f"the MongoDB mirror holds no {self._noun} with hash {config_hash!r}{legacy}"
        )

    # -- writing ---------------------------------------------------------------------------

    def _holds(self, document: Mapping[str, Any], content: C) -> bool:
        """Whether this document's content is exactly ``content`` (ours, 0.1's or storybench's).

        storybench's documents lack ``directus_id``; the content's own fills it in, so the hash
        check is the one storybench made when it wrote them.
        """
        data = {**document, "created_at": None, "updated_at": None}
        if "directus_id" not in document:
            data["directus_id"] = content.directus_id
        try:
            candidate = self.kind.from_storybench(data, context=self._location(document))
        except InvalidPromptSetError:
            return False
        return (
            candidate.content_hash == content.content_hash
            and document.get("config_hash") == content.config_hash
        )

    async def save(self, content: C) -> SaveOutcome:
        """Store a validated copy as the current one for its version; see the module docs.

        Writes nothing when the current copy has the same hash.
        """
        if not isinstance(content, self.kind.model):
            raise TypeError(f"this mirror holds {self._noun}s, not {type(content).__name__}")
        self.kind.ensure_valid(content)
        await self.ensure_indexes()
        version = content.version
        config_hash = content.config_hash
        current = await self._current(version)
        if current.content is not None and current.content.config_hash == config_hash:
            # Nothing to write, but a sync that died before activating left work to finish.
            await self.reconcile()
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
            "source_created_at": _iso(content.created_at),
            "source_updated_at": _iso(content.updated_at),
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
            same_hash = await self._find({"config_hash": config_hash}, _COPY_ORDER)
            matching = [d for d in same_hash if self._holds(d, content)]
            for document in matching:
                # Ours, or storybench's upgraded in place: metadata only, never the content.
                await self._collection.update_one({"_id": document["_id"]}, update)
            if not matching:
                await self._insert(content, metadata, now, keep_withdrawn, update)
        await self.reconcile()
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
                for v in await self._servable_by_version(
                    pymongo.DESCENDING, stop_at_first=False, raise_corrupt=False
                )
                if v.version != int(version)
            ]
            if remaining:
                # activate() stamps the new one first; the reconcile then deactivates this one.
                await self.activate(remaining[0].version)
        return bool(result.modified_count)

    async def _claim(self) -> int:
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
                active = await self._collection.find_one({"is_active": True}, {"_id": 1})
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
            top = await self._collection.find_one(
                {"activation_seq": {"$gt": 0}}, {"_id": 1}, sort=_RANK
            )
        if top is not None and top["_id"] == current.doc["_id"] and current.doc.get("is_active"):
            # Already the active set: re-syncing claims no number and writes nothing.
            await self.reconcile()
            return
        seq = await self._claim()
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
                top = await self._collection.find_one({"activation_seq": {"$gt": 0}}, sort=_RANK)
                if top is None:
                    if not await self._stamp_what_storybench_reads():
                        return None
                    continue
                version = int(top["version"])
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
                    {"activation_seq": {"$gt": 0}}, {"_id": 1, "activation_seq": 1}, sort=_RANK
                )
                if again is None or (
                    again["_id"] == target["_id"] and again.get("activation_seq") == seq
                ):
                    return version
            return version

    async def _stamp_what_storybench_reads(self) -> bool:
        """Nothing was activated through us: adopt the document storybench's reader finds.

        A database written by storybench alone may hold several active documents; the one its
        reader returns now is kept, stamped with ``_ADOPTED_SEQ`` so that it ranks above the
        rest, which the reconcile then deactivates. Returns False when none is active.
        """
        chosen = await self._collection.find_one({"is_active": True}, {"_id": 1})
        if chosen is None:
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
        pick = self._pick(await self._find({"version": top["version"]}, _COPY_ORDER))
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


def _synced_later(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    sa, sb = a.get("sync_order"), b.get("sync_order")
    if not isinstance(sa, int):
        return False
    return not isinstance(sb, int) or sa > sb


def _ranked_below(seq: float, order: Any, doc_id: Any) -> list[dict[str, Any]]:
    """A filter for documents that rank strictly below (seq, sync_order, _id) in ``_RANK``."""
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
