"""A real MongoDB wire-protocol server (nx-27017) on loopback, for tests and benchmarks.

nx-27017 ignores SIGTERM, so it is stopped with SIGKILL by the PID it was started with; each
instance has its own ``--pid-file`` because a second instance refuses to start otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def executable() -> str:
    beside = Path(sys.executable).with_name("nx-27017")
    if beside.exists():
        return str(beside)
    found = shutil.which("nx-27017")
    if not found:
        raise RuntimeError("nx-27017 is not installed: pip install 'nx-27017==0.8.1'")
    return found


@dataclass
class MongoServer:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    data_dir: str
    _paused: bool = False

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, *, persistent: bool = False, port: int | None = None) -> MongoServer:
        workdir = Path(tempfile.mkdtemp(prefix="nx27017-"))
        data_dir = str(workdir / "data") if persistent else "memory"
        server = cls._spawn(workdir, data_dir, port or _free_port())
        server.wait_ready()
        return server

    @classmethod
    def _spawn(cls, workdir: Path, data_dir: str, port: int) -> MongoServer:
        log = workdir / "nx.log"
        process = subprocess.Popen(
            [
                executable(),
                "--data-dir",
                data_dir,
                "--host",
                "127.0.0.1",
                "-p",
                str(port),
                "--log-file",
                str(log),
                "--pid-file",
                str(workdir / "nx.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return cls(process=process, port=port, workdir=workdir, data_dir=data_dir)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nx-27017 exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                time.sleep(0.3)  # listening; give the protocol loop a moment
                return
            time.sleep(0.1)
        raise RuntimeError(f"nx-27017 not listening on {self.port} after {timeout:.0f} s")

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
                if self._paused:
                    os.kill(self.pid, signal.SIGCONT)
            self.process.wait(timeout=30)
        self._paused = False
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / "nx.pid").unlink()

    def restart(self) -> None:
        self.kill()
        fresh = self._spawn(self.workdir, self.data_dir, self.port)
        self.process = fresh.process
        self.wait_ready()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MongoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_mongo(persistent: bool = False) -> Iterator[MongoServer]:
    server = MongoServer.start(persistent=persistent)
    try:
        yield server
    finally:
        server.stop()
