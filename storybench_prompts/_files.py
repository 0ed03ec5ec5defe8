"""Atomic file writes: a temporary file in the target's directory, flushed and fsynced, then
renamed over the target (or linked, never overwriting) and the directory fsynced. A crash
mid-write leaves the previous file; concurrent writers each leave a whole file; the temporary
file is removed whatever happens. Runs whole in the calling thread (callers put it in a worker
thread, so a cancelled caller cannot interrupt it half-way).
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from pathlib import Path

__all__ = ["fsync_directory", "write_atomically"]


def write_atomically(
    path: Path, data: bytes, *, replace: bool = True, keep_mode: bool = False
) -> None:
    """Write ``path`` whole; without ``replace``, only if it does not exist yet (of two
    writers, the first one stays). ``keep_mode`` keeps an existing file's permissions."""
    if not replace and path.exists():
        return
    mode = 0o644
    if keep_mode:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(path.stat().st_mode)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            if keep_mode:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # link() never overwrites
        fsync_directory(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def fsync_directory(directory: Path) -> None:
    """Make a rename durable: fsync its directory (where the platform can open one)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
