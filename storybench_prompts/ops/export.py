"""A self-contained snapshot: the file mirror's format, plus a manifest of what it holds.

``export_snapshot`` writes every published version of both kinds (or just what a lock names)
into a directory with ``FileMirror(directory, kind=...)`` saves, so the directory is a file
mirror that ``STORYBENCH_PROMPTS_MIRROR_DIR=DIR STORYBENCH_PROMPTS_OFFLINE=true`` serves with
no Directus at all. Every set is re-hashed before it is written and read back (and re-hashed)
after, so the snapshot holds exactly what the manifest names. The manifest,
``manifest.json``, is written last::

    {"format": 1, "tool_version": "0.3.0", "created_at": "2025-06-01T10:00:00+00:00",
     "directus_url": "https://cms.example.org", "offline": false,
     "kinds": {"prompts": [{"version": 1, "config_hash": "..."}], "evaluations": [...]}}
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from .._exceptions import ConfigurationError, MirrorUnavailableError
from .._files import write_atomically
from .._version import __version__
from ..content.kinds import KINDS, ContentKind
from ..content.models import VersionedContent
from ..mirrors import integrity
from ..mirrors.file import FileMirror
from ..sources.base import PromptRepository
from .lock import Lock, LockedSet, clean_url
from .locked import keep_in_mirror, resolve_locked

__all__ = ["MANIFEST", "Manifest", "export_snapshot"]

C = TypeVar("C", bound=VersionedContent)


class Repositories(Protocol):
    """Where the sets are read from: a repository per kind (``DirectusStack`` is one)."""

    def repository(self, kind: ContentKind[C]) -> PromptRepository[C]: ...


MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds: versions and hashes per kind, when, by which tool version."""

    kinds: dict[str, tuple[LockedSet, ...]]
    created_at: datetime
    tool_version: str
    directus_url: str | None
    offline: bool = False
    """Whether the snapshot was made from another snapshot (offline) rather than Directus."""

    def as_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "tool_version": self.tool_version,
            "created_at": self.created_at.isoformat(),
            "directus_url": self.directus_url,
            "offline": self.offline,
            "kinds": {name: [s.as_json() for s in sets] for name, sets in self.kinds.items()},
        }

    def dump(self, path: str | os.PathLike[str]) -> None:
        data = (json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n").encode()
        try:
            write_atomically(Path(path), data, keep_mode=True)
        except OSError as exc:
            raise MirrorUnavailableError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _prepare(directory: Path) -> Path:
    """Check that ``directory`` is new or empty; a staging directory beside it."""
    if directory.exists() and not directory.is_dir():
        raise ConfigurationError(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        raise ConfigurationError(
            f"{directory} is not empty: export into a new or empty directory, so the snapshot "
            "holds exactly what its manifest names"
        )
    parent = directory.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}.export-"))
        staging.chmod(0o755)  # a snapshot to ship: readable by others, as a new directory is
        return staging
    except OSError as exc:
        raise MirrorUnavailableError(f"cannot write into {parent}: {exc.strerror or exc}") from exc


def _publish(staging: Path, directory: Path) -> None:
    """The whole snapshot appears at once (a rename over the empty or missing directory)."""
    try:
        os.replace(staging, directory)
    except OSError as exc:
        raise MirrorUnavailableError(
            f"cannot move the snapshot into {directory}: {exc.strerror or exc}"
        ) from exc


def _discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


async def export_snapshot(
    stack: Repositories,
    directory: str | os.PathLike[str],
    *,
    lock: Lock | None = None,
    directus_url: str | None = None,
    offline: bool = False,
) -> Manifest:
    """Write the snapshot (see the module) from ``stack``; the manifest it wrote.

    Without ``lock``, every published version of each kind; with it, exactly the sets it
    names (found wherever they still are, see ``resolve_locked``). Written into a staging
    directory beside ``directory`` and moved into place whole at the end: a failure (a set that
    cannot be read, a copy that does not re-hash) leaves no partial snapshot.
    """
    target = Path(directory)
    staging = await anyio.to_thread.run_sync(_prepare, target)
    try:
        manifest = await _export(stack, staging, lock, directus_url, offline)
        await anyio.to_thread.run_sync(manifest.dump, staging / MANIFEST)
        await anyio.to_thread.run_sync(_publish, staging, target)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_discard, staging)
        raise
    return manifest


async def _export(
    stack: Repositories,
    directory: Path,
    lock: Lock | None,
    directus_url: str | None,
    offline: bool,
) -> Manifest:

    exported: dict[str, tuple[LockedSet, ...]] = {}
    for kind in KINDS.values():
        repository = stack.repository(kind)
        contents: list[VersionedContent] = []
        if lock is not None:
            locked = lock.set_of(kind)
            if locked is not None:
                contents.append((await resolve_locked(repository, locked, kind=kind)).content)
        else:
            for info in await repository.versions():
                contents.append(await repository.get(info.version))
        exported[kind.name] = tuple(
            [LockedSet.of(await _write(directory, kind, content)) for content in contents]
        )
    url: str | None = None
    if directus_url:
        try:
            url = clean_url(directus_url)
        except ValueError:
            url = None
    return Manifest(
        kinds=exported,
        created_at=datetime.now(UTC),
        tool_version=__version__,
        directus_url=url,
        offline=offline,
    )


async def _write(directory: Path, kind: ContentKind[Any], content: VersionedContent) -> Any:
    """Re-hash, save into the snapshot, read back by hash and re-hash again."""
    checked = integrity.checked(
        content, location=f"{kind.noun} v{content.version} to export", expected=None
    )
    return await keep_in_mirror(FileMirror(directory, kind=kind), checked)
