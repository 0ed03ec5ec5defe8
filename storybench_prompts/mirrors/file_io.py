"""The file mirror's file operations: atomic writes that survive cancellation, reads that a
caller may abandon on a stalled mount, and the write probe.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._exceptions import MirrorUnavailableError
from .._files import write_atomically
from .file_codec import parse

__all__ = ["probe_writable", "read_document", "write_file"]


async def read_document(path: Path) -> dict[str, Any] | None:
    """The document in ``path``, None when there is no such file."""
    try:
        # Abandoned when the caller gives up (mirror_timeout): the thread finishes on its own.
        raw = await anyio.to_thread.run_sync(path.read_bytes, abandon_on_cancel=True)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MirrorUnavailableError(f"cannot read {path}: {exc}") from exc
    return parse(path, raw)


def write_file(path: Path, data: bytes, replace: bool) -> None:
    """Write ``path`` atomically (its directory made first); without ``replace``, only if it
    does not exist yet."""
    if not replace and path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, replace=replace)


def probe_writable(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".write-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"ok")
    finally:
        with contextlib.suppress(FileNotFoundError):
            probe.unlink()
