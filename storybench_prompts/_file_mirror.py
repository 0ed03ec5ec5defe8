"""The file mirror: one JSON snapshot per version in a directory (the embedded default).

Layout: ``<dir>/prompt-set-v<N>.json``. No index file: the directory listing is the index, so
there is nothing that can disagree with the snapshots. Each snapshot stores its ``config_hash``
and is re-validated on every read; a file that fails is reported with its path and never served.

Writes go to a temporary file in the same directory, are flushed and fsynced, then renamed over
the old snapshot (``os.replace`` is atomic on POSIX), so a crash mid-write leaves the previous
snapshot intact and concurrent writers from several processes each leave a whole file.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiofiles
import aiofiles.os
import anyio
import platformdirs

from ._convert import ensure_valid, prompt_set_from_storybench
from ._exceptions import (
    InvalidPromptSetError,
    MirrorCorruptError,
    MirrorUnavailableError,
    PromptSetNotFoundError,
)
from ._models import PromptSet, Provenance, VersionInfo
from ._repository import SaveOutcome

__all__ = ["FileMirror", "default_mirror_dir"]

SCHEMA_VERSION = 1
_FILE_RE = re.compile(r"^prompt-set-v(\d+)\.json$")


def default_mirror_dir() -> Path:
    """``STORYBENCH_PROMPTS_MIRROR_DIR``, else ``<user cache dir>/storybench-prompts/mirror``."""
    configured = os.environ.get("STORYBENCH_PROMPTS_MIRROR_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("storybench-prompts")) / "mirror"


class FileMirror:
    """A directory of JSON snapshots. Implements ``PromptMirror``."""

    name = "file"

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_mirror_dir()

    def __repr__(self) -> str:
        return f"FileMirror(directory={str(self.directory)!r})"

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
        return None

    def path_for(self, version: int) -> Path:
        return self.directory / f"prompt-set-v{int(version)}.json"

    # -- reading ---------------------------------------------------------------------------

    async def _stored_versions(self) -> list[int]:
        try:
            names = await aiofiles.os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise MirrorUnavailableError(
                f"cannot list the file mirror {self.directory}: {exc}"
            ) from exc
        found = (_FILE_RE.match(n) for n in names)
        return sorted(int(m.group(1)) for m in found if m)

    async def _read_document(self, version: int) -> dict[str, Any] | None:
        path = self.path_for(version)
        try:
            async with aiofiles.open(path, "rb") as f:
                raw = await f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MirrorUnavailableError(f"cannot read {path}: {exc}") from exc
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise MirrorCorruptError(
                f"{path} is not valid JSON ({exc}); it will not be served", location=str(path)
            ) from exc
        if not isinstance(document, dict):
            raise MirrorCorruptError(f"{path} does not hold an object", location=str(path))
        return document

    def _decode(self, version: int, document: dict[str, Any]) -> PromptSet:
        path = self.path_for(version)
        try:
            prompt_set = prompt_set_from_storybench(document["prompt_set"], context=str(path))
        except (KeyError, TypeError) as exc:
            raise MirrorCorruptError(
                f"{path} lacks the 'prompt_set' member", location=str(path)
            ) from exc
        except InvalidPromptSetError as exc:
            raise MirrorCorruptError(
                f"{path} holds an invalid prompt set: {exc}", location=str(path)
            ) from exc
        if prompt_set.version != version:
            raise MirrorCorruptError(
                f"{path} holds version {prompt_set.version}, not {version}", location=str(path)
            )
        if document.get("config_hash") != prompt_set.config_hash:
            raise MirrorCorruptError(
                f"{path} was changed after it was written: stored hash "
                f"{document.get('config_hash')!r}, content hash {prompt_set.config_hash!r}",
                location=str(path),
            )
        fetched_at = document.get("fetched_at")
        fetched = float(fetched_at) if isinstance(fetched_at, int | float) else time.time()
        return prompt_set.with_provenance(
            Provenance(
                source="mirror",
                origin=str(document.get("origin", "directus")),
                fetched_at_epoch=fetched,
            )
        )

    async def get(self, version: int) -> PromptSet:
        document = await self._read_document(version)
        if document is None:
            raise PromptSetNotFoundError(
                f"the file mirror holds no version {version}", version=version
            )
        return self._decode(version, document)

    async def latest(self) -> PromptSet:
        versions = await self._stored_versions()
        if not versions:
            raise PromptSetNotFoundError(f"the file mirror at {self.directory} is empty")
        return await self.get(versions[-1])

    async def versions(self) -> list[VersionInfo]:
        out = []
        for v in await self._stored_versions():
            try:
                out.append((await self.get(v)).info())
            except (MirrorCorruptError, PromptSetNotFoundError):
                continue  # corrupt files are reported by get(); a listing skips them
        return out

    async def stored_hash(self, version: int) -> str | None:
        document = await self._read_document(version)
        if document is None:
            return None
        value = document.get("config_hash")
        return value if isinstance(value, str) else None

    # -- writing ---------------------------------------------------------------------------

    async def save(self, prompt_set: PromptSet) -> SaveOutcome:
        ensure_valid(prompt_set)
        previous: str | None
        try:
            # Decode, not just read the stored hash: a hand-edited file may keep its old hash.
            document = await self._read_document(prompt_set.version)
            previous = (
                None if document is None else self._decode(prompt_set.version, document).config_hash
            )
        except MirrorCorruptError:
            previous = "corrupt"  # overwrite a corrupt snapshot with a good one
        if previous == prompt_set.config_hash:
            return "unchanged"
        provenance = prompt_set.provenance
        document = {
            "schema_version": SCHEMA_VERSION,
            "config_hash": prompt_set.config_hash,
            "content_hash": prompt_set.content_hash,
            "origin": provenance.origin if provenance else "directus",
            "fetched_at": provenance.fetched_at_epoch if provenance else time.time(),
            "saved_at": time.time(),
            "prompt_set": {
                **prompt_set.to_storybench(),
                "version_name": prompt_set.version_name,
            },
        }
        data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
        await self._write_atomically(self.path_for(prompt_set.version), data)
        return "new" if previous is None else "updated"

    async def _write_atomically(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            await aiofiles.os.makedirs(self.directory, exist_ok=True)
            async with aiofiles.open(tmp, "wb") as f:
                await f.write(data)
                await f.flush()
                await anyio.to_thread.run_sync(os.fsync, f.fileno())
            await aiofiles.os.replace(tmp, path)
            await anyio.to_thread.run_sync(_fsync_dir, self.directory)
        except OSError as exc:
            raise MirrorUnavailableError(f"cannot write {path}: {exc}") from exc
        finally:
            if await aiofiles.os.path.exists(tmp):
                await aiofiles.os.remove(tmp)

    async def activate(self, version: int) -> None:
        """Nothing to do: storybench does not read the file mirror; ``latest`` is the highest."""
        return None

    async def check_writable(self) -> None:
        probe = self.directory / f".write-probe-{uuid.uuid4().hex}"
        try:
            await aiofiles.os.makedirs(self.directory, exist_ok=True)
            async with aiofiles.open(probe, "wb") as f:
                await f.write(b"ok")
            await aiofiles.os.remove(probe)
        except OSError as exc:
            raise MirrorUnavailableError(
                f"the file mirror {self.directory} is not writable: {exc}"
            ) from exc


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
