"""The MongoDB mirror, in storybench's own document shape (PyMongo async; motor accepted).

Collection ``prompts`` of database ``storybench``; one document per version::

    {_id, config_hash, version, sequences, created_at, is_active,        # storybench's fields
     version_name, directus_id, content_hash, source_created_at,
     source_updated_at, fetched_at, synced_at, activation_seq,
     schema_version}                                                      # ours

storybench's reader (``find_one({"is_active": True})``) keeps working unchanged, and, as with
storybench's own ``sync-prompts``, the set it reads is the one last *activated*:
:meth:`activate` (what ``sync`` does for the version it was asked for) stamps the document with
the next number of a counter (``activation_seq``); :meth:`save` alone changes nothing about
activation, except that it activates the saved set when no set is active at all.

Activation invariant: *once any set is active, at least one set is active at every instant*,
and at rest exactly the set with the highest ``activation_seq`` is active. Every write ends with
:meth:`reconcile`, which (1) activates the document with the highest ``activation_seq``, then
(2) deactivates documents with a *lower* one, then re-reads the top and repeats if it changed.
Activation precedes deactivation and nobody deactivates the top they saw, so a reader between
any two writes finds one or two active sets, never zero; a sync killed between its writes
leaves the previous active set in place and the next write finishes the job; two syncs racing
converge on the single most recent activation. Our own :meth:`latest` sorts by version and never
reads ``is_active``, so it does not depend on any window between writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import pymongo
import pymongo.errors
from pymongo import AsyncMongoClient

from ._convert import ensure_valid, prompt_set_from_storybench
from ._exceptions import (
    ConfigurationError,
    InvalidPromptSetError,
    MirrorCorruptError,
    MirrorUnavailableError,
    PromptSetNotFoundError,
)
from ._models import PromptSet, Provenance, VersionInfo
from ._repository import SaveOutcome

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_SERVER_SELECTION_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "MongoMirror",
    "redact_uri",
]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "storybench"
DEFAULT_COLLECTION = "prompts"
# Short on purpose: the mirror is the fallback path, and a fallback that hangs is no fallback.
DEFAULT_SERVER_SELECTION_TIMEOUT = 2.0
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 2.0
SCHEMA_VERSION = 1
META_COLLECTION = "storybench_prompts_meta"

_CONTENT_FIELDS = {"_id": 0, "config_hash": 1, "version": 1}


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (for logs, reprs and errors)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable MongoDB URI>"
    if parts.password is None and "@" not in parts.netloc:
        return uri
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}" if user else f"***@{hosts}"))


@contextlib.contextmanager
def map_pymongo_errors(what: str, where: str) -> Iterator[None]:
    """Turn PyMongo's errors into ours. Messages never include the URI's credentials."""
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


def _scrub(text: str) -> str:
    # PyMongo's messages name hosts, not credentials; cut them short all the same.
    first = text.split(", Timeout:")[0]
    return first[:300]


class MongoMirror:
    """Prompt sets in MongoDB, readable by storybench. Implements ``PromptMirror``.

    Give either ``uri`` (default ``MONGODB_URI``) or ``database``, an already-open PyMongo
    ``AsyncDatabase`` or motor ``AsyncIOMotorDatabase``; an injected database is not closed by
    :meth:`aclose`.
    """

    name = "mongodb"

    def __init__(
        self,
        uri: str | None = None,
        *,
        database: Any = None,
        database_name: str = DEFAULT_DATABASE,
        collection_name: str = DEFAULT_COLLECTION,
        server_selection_timeout: float = DEFAULT_SERVER_SELECTION_TIMEOUT,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
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
            self._db = self._client[database_name]
        self._collection = self._db[collection_name]
        self._indexes_ready = False

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
        if self._client is not None:
            await self._client.close()

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return map_pymongo_errors(what, self._where)

    async def ensure_indexes(self) -> None:
        """Create the indexes (idempotent): ``version`` unique, and ``is_active`` for readers."""
        if self._indexes_ready:
            return
        with self._errors("index creation"):
            await self._collection.create_index(
                [("version", pymongo.ASCENDING)], unique=True, name="version_unique"
            )
            await self._collection.create_index(
                [("is_active", pymongo.ASCENDING)], name="is_active"
            )
        self._indexes_ready = True

    # -- reading ---------------------------------------------------------------------------

    def _decode(self, document: Mapping[str, Any]) -> PromptSet:
        location = f"{self._where} {self._collection.name}/{document.get('_id')}"
        try:
            prompt_set = prompt_set_from_storybench(
                {
                    **document,
                    "created_at": document.get("source_created_at"),
                    "updated_at": document.get("source_updated_at"),
                },
                context=location,
            )
        except InvalidPromptSetError as exc:
            raise MirrorCorruptError(
                f"MongoDB document {location} is invalid: {exc}", location=location
            ) from exc
        if document.get("config_hash") != prompt_set.config_hash:
            raise MirrorCorruptError(
                f"MongoDB document {location} was changed after it was written: stored hash "
                f"{document.get('config_hash')!r}, content hash {prompt_set.config_hash!r}",
                location=location,
            )
        fetched = (
            document.get("fetched_at") or document.get("synced_at") or document.get("created_at")
        )
        fetched_epoch = fetched.timestamp() if isinstance(fetched, datetime) else time.time()
        return prompt_set.with_provenance(
            Provenance(source="mirror", origin="directus", fetched_at_epoch=fetched_epoch)
        )

    async def get(self, version: int) -> PromptSet:
        with self._errors(f"reading version {version}"):
            document = await self._collection.find_one({"version": int(version)})
        if document is None:
            raise PromptSetNotFoundError(
                f"the MongoDB mirror holds no version {version}", version=version
            )
        return self._decode(document)

    async def latest(self) -> PromptSet:
        with self._errors("reading the latest version"):
            document = await self._collection.find_one({}, sort=[("version", pymongo.DESCENDING)])
        if document is None:
            raise PromptSetNotFoundError("the MongoDB mirror is empty")
        return self._decode(document)

    async def active(self) -> PromptSet:
        """What storybench's own reader sees: the document with ``is_active: true``."""
        with self._errors("reading the active set"):
            document = await self._collection.find_one({"is_active": True}, sort=[("version", -1)])
        if document is None:
            raise PromptSetNotFoundError("the MongoDB mirror has no active set")
        return self._decode(document)

    async def versions(self) -> list[VersionInfo]:
        out = []
        with self._errors("listing versions"):
            async for document in self._collection.find({}, sort=[("version", pymongo.ASCENDING)]):
                try:
                    out.append(self._decode(document).info())
                except MirrorCorruptError as exc:
                    logger.warning("skipping %s", exc)
        return out

    async def stored_hash(self, version: int) -> str | None:
        with self._errors(f"reading the hash of version {version}"):
            document = await self._collection.find_one({"version": int(version)}, _CONTENT_FIELDS)
        if document is None:
            return None
        value = document.get("config_hash")
        return value if isinstance(value, str) else None

    async def _verified_hash(self, version: int) -> str | None:
        """The stored hash if the stored document is valid, ``"corrupt"`` if not, else None."""
        with self._errors(f"reading version {version}"):
            document = await self._collection.find_one({"version": int(version)})
        if document is None:
            return None
        try:
            return self._decode(document).config_hash
        except MirrorCorruptError:
            return "corrupt"  # a hand-edited document may keep its old hash; rewrite it

    # -- writing ---------------------------------------------------------------------------

    async def save(self, prompt_set: PromptSet) -> SaveOutcome:
        """Store a validated set (one document per version); write nothing if unchanged."""
        ensure_valid(prompt_set)
        await self.ensure_indexes()
        previous = await self._verified_hash(prompt_set.version)
        if previous == prompt_set.config_hash:
            # Nothing to write, but a sync that died before activating left work to finish.
            await self.reconcile()
            return "unchanged"
        now = datetime.now(UTC)
        provenance = prompt_set.provenance
        fetched_at = (
            datetime.fromtimestamp(provenance.fetched_at_epoch, tz=UTC) if provenance else now
        )
        content = {
            "config_hash": prompt_set.config_hash,
            "content_hash": prompt_set.content_hash,
            "version": prompt_set.version,
            "version_name": prompt_set.version_name,
            "directus_id": prompt_set.directus_id,
            "sequences": prompt_set.sequences_as_dicts(),
            "source_created_at": prompt_set.created_at,
            "source_updated_at": prompt_set.updated_at,
            "fetched_at": fetched_at,
            "synced_at": now,
            "schema_version": SCHEMA_VERSION,
        }
        with self._errors(f"saving version {prompt_set.version}"):
            if previous is None:
                try:
                    # A new document starts inactive and never activated; activation is
                    # activate()'s and reconcile()'s job.
                    await self._collection.insert_one(
                        {**content, "created_at": now, "is_active": False, "activation_seq": 0}
                    )
                    outcome: SaveOutcome = "new"
                except pymongo.errors.DuplicateKeyError:
                    # A concurrent save inserted this version first; update it instead.
                    await self._collection.update_one(
                        {"version": prompt_set.version}, {"$set": content}
                    )
                    outcome = "updated"
            else:
                await self._collection.update_one(
                    {"version": prompt_set.version}, {"$set": content}
                )
                outcome = "updated"
        await self._activate_if_none(prompt_set.version)
        return outcome

    async def _activate_if_none(self, version: int) -> None:
        # storybench's reader must find something: the first set saved becomes the active one.
        with self._errors("reading the active set"):
            active = await self._collection.find_one({"is_active": True}, {"_id": 1})
        if active is None:
            await self.activate(version)
        else:
            await self.reconcile()

    async def activate(self, version: int) -> None:
        """Make this version the one storybench's reader finds (``is_active: true``)."""
        with self._errors(f"activating version {version}"):
            top = await self._collection.find_one(
                {},
                {"_id": 0, "version": 1, "is_active": 1},
                sort=[("activation_seq", pymongo.DESCENDING), ("version", pymongo.DESCENDING)],
            )
        if top is not None and top.get("version") == int(version) and top.get("is_active"):
            # Already the active set: re-syncing writes nothing.
            await self.reconcile()
            return
        with self._errors(f"activating version {version}"):
            counter = await self._db[META_COLLECTION].find_one_and_update(
                {"_id": f"activation:{self._collection.name}"},
                {"$inc": {"seq": 1}},
                upsert=True,
                return_document=pymongo.ReturnDocument.AFTER,
            )
            result = await self._collection.update_one(
                {"version": int(version)}, {"$set": {"activation_seq": int(counter["seq"])}}
            )
        if result.matched_count == 0:
            raise PromptSetNotFoundError(
                f"the MongoDB mirror holds no version {version} to activate", version=version
            )
        await self.reconcile()

    async def reconcile(self, max_rounds: int = 10) -> int | None:
        """Make the most recently activated set the only active one; return its version."""
        with self._errors("reconciling the active set"):
            seen: int | None = None
            for _ in range(max_rounds):
                top = await self._collection.find_one(
                    {},
                    {"_id": 1, "version": 1, "activation_seq": 1},
                    sort=[("activation_seq", pymongo.DESCENDING), ("version", pymongo.DESCENDING)],
                )
                if top is None:
                    return None
                seq = int(top.get("activation_seq") or 0)
                if seq == seen:
                    return int(top["version"])
                # Activate first, deactivate older activations second: never zero active.
                await self._collection.update_one(
                    {"_id": top["_id"], "is_active": {"$ne": True}}, {"$set": {"is_active": True}}
                )
                await self._collection.update_many(
                    {"activation_seq": {"$lt": seq}, "is_active": True},
                    {"$set": {"is_active": False}},
                )
                seen = seq
            return int(top["version"])

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
