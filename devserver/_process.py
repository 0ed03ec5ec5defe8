"""What the local Directus and nx-27017 servers share: a process on loopback that tests stall,
kill and restart by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A server started in its own session, so its whole process group can be killed."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    _paused: bool = field(default=False, repr=False, kw_only=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pause(self) -> None:
        """Freeze the process: it keeps accepting connections but never answers (a cold start)."""
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Frozen inside the block, answering again after it, whatever the block raised."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def kill(self) -> None:
        """Stop the process group with SIGKILL (which ends a stopped process too)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._paused = False

    def restart(self) -> None:
        """Start again on the same port with the same data."""
        self.kill()
        self.process = self._launch()
        self.wait_ready()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _launch(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 60.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
