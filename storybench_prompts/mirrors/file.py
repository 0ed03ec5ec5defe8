"""The file mirror: JSON snapshots in a directory (the embedded default), for any content kind.

Layout, for a kind whose ``file_prefix`` is ``prompt-set``::

    <dir>/prompt-set-v<N>.json                 the current copy of version N
    <dir>/by-hash/prompt-set-<config_hash>.json every content ever saved, by its hash

No index file: the directory listing is the index, so nothing can disagree with the files.
Each file stores its ``config_hash`` and is re-validated (content rules and hash) on every
read; a file that fails is a :class:`MirrorCorruptError` naming its path and is never served.

**Records.** A save first writes the content-addressed record of what it saves; a record is
written once (an exclusive link: concurrent writers leave one) and never overwritten or
deleted, because a benchmark run that recorded a ``config_hash`` may need exactly that content
back (:meth:`FileMirror.get_by_hash`). Then it replaces the version's current snapshot, unless
that already holds the same hash.

**Withdrawal.** :meth:`FileMirror.withdraw` marks the version's snapshot ``withdrawn_at`` (the
snapshot and the records stay); ``get``, ``latest``, ``versions`` and ``stored_hash`` skip it. A
later save of that version fresh from Directus (it is published again) replaces the snapshot
and serves it again; a save of content that did not come from Directus leaves it withdrawn.
There is no active set here (storybench does not read this mirror): ``activate`` does nothing.

**Writes are atomic and survive cancellation.** Each file is written to a temporary file in its
own directory, flushed and fsynced, then renamed over the old one (``os.replace``, atomic on
POSIX) or linked into place for records, and the directory is fsynced: a crash mid-write leaves
the previous file, and concurrent writers from several processes each leave a whole file. The
whole sequence, including removing the temporary file when anything fails, runs as one call in
a worker thread that a cancelled caller waits for, so a cancelled ``save`` never leaves a
temporary file behind (cancellation arrives once the file operations are done).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import platformdirs

from .._closing import Closeable
from .._exceptions import (
    MirrorCorruptError,
    MirrorUnavailableError,
    PromptSetNotFoundError,
)
from .._logs import fields, get_logger
from ..content.kinds import ContentKind
from ..content.models import VersionedContent, VersionInfo
from . import integrity
from .base import SaveOutcome
from .file_codec import decode, document_of, encode
from .file_io import probe_writable, read_document, write_file

__all__ = ["FileMirror", "default_mirror_dir", "mirror_key"]

logger = get_logger(__name__, source="file")

C = TypeVar("C", bound=VersionedContent)
D = TypeVar("D", bound=VersionedContent)

RECORDS_DIR = "by-hash"
_HASH_RE = re.compile(r"^[0-9a-f]{16}$")


def default_mirror_dir(directus_url: str | None = None) -> Path:
    """``STORYBENCH_PROMPTS_MIRROR_DIR``, else a folder of the user cache dir of its own for
    each Directus (``<cache>/storybench-prompts/mirror/<host>-<port>-<hash of the URL>``), so
    the copies of one Directus are never served for another; ``.../mirror`` with no URL."""
    configured = os.environ.get("STORYBENCH_PROMPTS_MIRROR_DIR")
    if configured:
        return Path(configured).expanduser()
    base = Path(platformdirs.user_cache_dir("storybench-prompts")) / "mirror"
    return base / mirror_key(directus_url) if directus_url else base


def mirror_key(directus_url: str) -> str:
    """A folder name for one Directus: readable, and distinct for distinct URLs (never an
    error: a URL that does not parse gets a folder of its own all the same)."""
    raw = directus_url.strip()
    try:
        parts = urlsplit(raw)
        host = (parts.hostname or "directus").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port out of range, a broken IPv6 bracket
        return f"unparsed-{hashlib.sha256(raw.encode()).hexdigest()[:10]}"
    path = parts.path.rstrip("/")
    # The identity of a Directus: scheme, host, port and path (never userinfo or a query).
    identity = f"{parts.scheme}://{host}:{port}{path}"
    readable = re.sub(r"[^a-z0-9.]+", "-", f"{host}-{port}{path}").strip("-")[:60]
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


class FileMirror(Generic[C], Closeable):
    """A directory of JSON snapshots of one content kind. Implements ``PromptMirror``."""

    name = "file"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        kind: ContentKind[C],
    ) -> None:
        self.directory = Path(directory) if directory is not None else default_mirror_dir()
        self.kind: ContentKind[C] = kind
        self._file_re = re.compile(rf"^{re.escape(kind.file_prefix)}-v(\d+)\.json$")

    def for_kind(self, kind: ContentKind[D]) -> FileMirror[D]:
        """A mirror of ``kind`` in the same directory (its own file names)."""
        return FileMirror(self.directory, kind=kind)

    def __repr__(self) -> str:
        return f"FileMirror(directory={str(self.directory)!r}, kind={self.kind.name!r})"

    @property
    def location(self) -> str:
        """Where the copies are, for a person: ``file mirror /path/to/dir``."""
        return f"file mirror {self.directory}"

    def path_for(self, version: int) -> Path:
        """The current snapshot of a version."""
        return self.directory / f"{self.kind.file_prefix}-v{int(version)}.json"

    def record_path(self, config_hash: str) -> Path:
        """The content-addressed record of a hash (written once, never changed)."""
        return self.directory / RECORDS_DIR / f"{self.kind.file_prefix}-{config_hash}.json"

    # -- reading ---------------------------------------------------------------------------

    async def _stored_versions(self) -> list[int]:
        try:
            # A read on a stalled mount is abandoned when the caller gives up (mirror_timeout):
            # the thread finishes on its own and nothing depends on its result.
            names = await anyio.to_thread.run_sync(
                os.listdir, self.directory, abandon_on_cancel=True
            )
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise MirrorUnavailableError(
                f"cannot list the file mirror {self.directory}: {exc}"
            ) from exc
        found = (self._file_re.match(n) for n in names)
        return sorted(int(m.group(1)) for m in found if m)

    async def _snapshot(self, version: int) -> tuple[C, dict[str, Any]] | None:
        """The decoded snapshot of a version and its document (withdrawn or not), or None."""
        path = self.path_for(version)
        document = await read_document(path)
        if document is None:
            return None
        content = decode(self.kind, path, document)
        if content.version != version:
            raise MirrorCorruptError(
                f"{path} holds version {content.version}, not {version}", location=str(path)
            )
        return content, document

    async def get(self, version: int) -> C:
        found = await self._snapshot(version)
        if found is None:
            raise PromptSetNotFoundError(
                f"the file mirror holds no version {version}", version=version
            )
        content, document = found
        if document.get("withdrawn_at") is not None:
            raise PromptSetNotFoundError(
                f"the file mirror holds version {version}, but it was withdrawn (Directus no "
                "longer publishes it)",
                version=version,
            )
        return content

    async def latest(self) -> C:
        for version in reversed(await self._stored_versions()):
            found = await self._snapshot(version)  # a corrupt top raises: never skip to older
            if found is not None and found[1].get("withdrawn_at") is None:
                return found[0]
        raise PromptSetNotFoundError(
            f"the file mirror at {self.directory} holds no served {self.kind.noun}"
        )

    async def versions(self) -> list[VersionInfo]:
        out = []
        for version in await self._stored_versions():
            try:
                out.append((await self.get(version)).info())
            except (MirrorCorruptError, PromptSetNotFoundError):
                continue  # corrupt files are reported by get(); a listing skips them
        return out

    async def stored_hash(self, version: int) -> str | None:
        try:
            return (await self.get(version)).config_hash
        except (MirrorCorruptError, PromptSetNotFoundError):
            return None  # a corrupt copy counts as absent, so the next save replaces it

    async def get_by_hash(self, config_hash: str) -> C:
        if not isinstance(config_hash, str) or not _HASH_RE.match(config_hash):
            raise PromptSetNotFoundError(f"{config_hash!r} is not a config_hash")
        path = self.record_path(config_hash)
        corrupt: MirrorCorruptError | None = None
        try:
            content = await self._record(path, config_hash)
        except MirrorCorruptError as exc:
            corrupt = exc  # the snapshot of its version may still hold that content
        else:
            if content is not None:
                return content
        # A snapshot holding the hash: records written before records existed (schema 1), or
        # a record damaged on disk (the next save of that content repairs it).
        for version in await self._stored_versions():
            with contextlib.suppress(MirrorCorruptError):
                found = await self._snapshot(version)
                if found is not None and found[0].config_hash == config_hash:
                    return found[0]
        if corrupt is not None:
            raise corrupt
        raise PromptSetNotFoundError(
            f"the file mirror holds no {self.kind.noun} with hash {config_hash!r}"
        )

    async def _record(self, path: Path, config_hash: str) -> C | None:
        """The content of a record, None when absent, :class:`MirrorCorruptError` when it does
        not decode to exactly ``config_hash``."""
        document = await read_document(path)
        if document is None:
            return None
        content = decode(self.kind, path, document)
        if content.config_hash != config_hash:
            raise integrity.mismatch(str(path), config_hash, content.config_hash)
        return content

    async def withdrawn_versions(self) -> list[VersionInfo]:
        """The versions kept only as records (withdrawn), with the hash each last held."""
        out = []
        for version in await self._stored_versions():
            with contextlib.suppress(MirrorCorruptError):
                found = await self._snapshot(version)
                if found is not None and found[1].get("withdrawn_at") is not None:
                    out.append(found[0].info())
        return out

    async def hashes_with_prefix(self, prefix: str) -> list[str]:
        """Every ``config_hash`` this mirror holds (records and snapshots) that starts with
        ``prefix``, sorted; for resolving a short hash as git does."""
        prefix = prefix.lower()
        found: set[str] = set()
        head = f"{self.kind.file_prefix}-"
        try:
            names = await anyio.to_thread.run_sync(
                os.listdir, self.directory / RECORDS_DIR, abandon_on_cancel=True
            )
        except FileNotFoundError:
            names = []
        except OSError as exc:
            raise MirrorUnavailableError(
                f"cannot list the file mirror {self.directory / RECORDS_DIR}: {exc}"
            ) from exc
        for name in names:
            if name.startswith(head) and name.endswith(".json"):
                candidate = name[len(head) : -len(".json")]
                if _HASH_RE.match(candidate) and candidate.startswith(prefix):
                    found.add(candidate)
        # Snapshots written before records existed (schema 1) still count.
        for version in await self._stored_versions():
            with contextlib.suppress(MirrorCorruptError):
                document = await read_document(self.path_for(version))
                stored = document.get("config_hash") if document else None
                if isinstance(stored, str) and _HASH_RE.match(stored) and stored.startswith(prefix):
                    found.add(stored)
        return sorted(found)

    # -- writing ---------------------------------------------------------------------------

    async def save(self, content: C) -> SaveOutcome:
        """Record the content by hash, then make it the version's current snapshot."""
        if not isinstance(content, self.kind.model):
            raise TypeError(f"this mirror holds {self.kind.noun}s, not {type(content).__name__}")
        self.kind.ensure_valid(content)
        record = self.record_path(content.config_hash)
        try:
            intact = await self._record(record, content.config_hash) is not None
        except MirrorCorruptError:
            intact = False  # damaged on disk: this very content replaces it, whole
        if not intact:
            encoded = encode(record, document_of(self.kind, content, withdrawn_at=None))
            await self._write(record, encoded, replace=record.exists())
        path = self.path_for(content.version)
        previous: str | None
        withdrawn = False
        try:
            found = await self._snapshot(content.version)
        except MirrorCorruptError:
            previous = "corrupt"  # replace a corrupt snapshot with a good one
        else:
            previous = found[0].config_hash if found else None
            withdrawn = found is not None and found[1].get("withdrawn_at") is not None
        provenance = content.provenance
        fresh = provenance is None or provenance.source == "directus"
        if withdrawn and not fresh:
            return "unchanged"  # recorded; only Directus can publish the version again
        if previous == content.config_hash and not withdrawn:
            return "unchanged"
        document = document_of(self.kind, content, withdrawn_at=None)
        await self._write(path, encode(path, document), replace=True)
        return "new" if previous is None or withdrawn else "updated"

    async def _write(self, path: Path, data: bytes, *, replace: bool = False) -> None:
        try:
            await anyio.to_thread.run_sync(write_file, path, data, replace)
        except (OSError, ValueError) as exc:
            raise MirrorUnavailableError(f"cannot write {path}: {exc}") from exc

    async def withdraw(self, version: int) -> bool:
        """Mark the version's snapshot withdrawn; it and every record stay on disk."""
        try:
            found = await self._snapshot(version)
        except MirrorCorruptError as exc:
            logger.warning(
                "cannot withdraw version %d (it is not served anyway): %s",
                version,
                exc,
                extra=fields(kind=self.kind.name, version=version, source="file", error=exc),
            )
            return False
        if found is None or found[1].get("withdrawn_at") is not None:
            return False
        document = {**found[1], "withdrawn_at": time.time()}
        path = self.path_for(version)
        await self._write(path, encode(path, document), replace=True)
        return True

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        """Nothing to do: storybench does not read the file mirror; ``latest`` is the highest."""
        return None

    async def check_writable(self) -> None:
        try:
            await anyio.to_thread.run_sync(probe_writable, self.directory)
        except OSError as exc:
            raise MirrorUnavailableError(
                f"the file mirror {self.directory} is not writable: {exc}"
            ) from exc
