"""A real MongoDB wire-protocol server (nx-27017) on loopback, for tests and benchmarks.

nx-27017 ignores SIGTERM, so it is stopped with SIGKILL by the PID it was started with; each
instance has its own ``--pid-file`` because a second instance refuses to start otherwise.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devserver._process import ServerProcess, free_port


def executable() -> str:
    beside = Path(sys.executable).with_name("nx-27017")
    if beside.exists():
        return str(beside)
    found = shutil.which("nx-27017")
    if not found:
        raise RuntimeError("nx-27017 is not installed: pip install 'nx-27017==0.8.1'")
    return found


@dataclass
class MongoServer(ServerProcess):
    data_dir: str

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "nx.pid"

    @classmethod
    def start(cls, *, persistent: bool = False, port: int | None = None) -> MongoServer:
        workdir = Path(tempfile.mkdtemp(prefix="nx27017-"))
        data_dir = str(workdir / "data") if persistent else "memory"
        port = port or free_port()
        server = cls(
            process=_start_nx(workdir, data_dir, port),
            port=port,
            workdir=workdir,
            data_dir=data_dir,
        )
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> subprocess.Popen[bytes]:
        return _start_nx(self.workdir, self.data_dir, self.port)

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

    def kill(self) -> None:
        super().kill()
        # A second nx-27017 refuses to start while the PID file is there.
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()


def _start_nx(workdir: Path, data_dir: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            executable(),
            "--data-dir",
            data_dir,
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--log-file",
            str(workdir / "nx.log"),
            "--pid-file",
            str(workdir / "nx.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextlib.contextmanager
def running_mongo(persistent: bool = False) -> Iterator[MongoServer]:
    server = MongoServer.start(persistent=persistent)
    try:
        yield server
    finally:
        server.stop()
