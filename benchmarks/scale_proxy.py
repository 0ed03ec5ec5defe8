"""A counting proxy in front of Directus: every HTTP request that reaches it is logged.

It listens on 127.0.0.1 and runs its own event loop in a thread. For each client connection
it opens one connection to Directus and then, from client to server, reads plain HTTP/1.1
requests one after the other (keep-alive; bodies framed by ``Content-Length`` or chunked),
logs each and forwards it; from server to client it pipes bytes as they come. A request that
asks for a WebSocket upgrade is logged as one and, from then on, both directions are piped
untouched. When Directus cannot be reached the client's connection is closed at once.

Only what arrives from clients is counted, so a test harness that talks to Directus directly
(its admin calls, its readiness pings) does not appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CountingProxy", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    at: float
    """``time.monotonic()`` when its head arrived."""
    method: str
    path: str
    query: str
    connection: int
    upgrade: bool
    """A WebSocket upgrade request."""

    @property
    def key(self) -> str:
        return f"{'WS ' if self.upgrade else ''}{self.method} {self.path}"


class CountingProxy:
    """``with CountingProxy(port) as proxy: ... proxy.url ... proxy.between(t0, t1)``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._log: list[Request] = []
        self._lock = threading.Lock()
        self._connections = 0
        self._refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what was counted ----------------------------------------------------------------

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def between(self, start: float, end: float | None = None) -> list[Request]:
        end = float("inf") if end is None else end
        return [r for r in self.requests() if start <= r.at < end]

    def last_request_at(self) -> float | None:
        with self._lock:
            return self._log[-1].at if self._log else None

    @property
    def refused_connections(self) -> int:
        """Client connections closed because Directus did not accept ours."""
        return self._refused

    @staticmethod
    def summary(requests: Iterable[Request]) -> dict[str, int]:
        """Counts by method and path (WebSocket upgrades as ``WS GET /websocket``)."""
        return dict(Counter(r.key for r in requests).most_common())

    @staticmethod
    def http(requests: Iterable[Request]) -> int:
        return sum(1 for r in requests if not r.upgrade)

    @staticmethod
    def upgrades(requests: Iterable[Request]) -> int:
        return sum(1 for r in requests if r.upgrade)

    def wait_quiet(self, quiet: float = 2.0, timeout: float = 120.0) -> float:
        """Wait until no request arrived for ``quiet`` seconds; return how long it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            last = self.last_request_at()
            now = time.monotonic()
            if last is None or now - last >= quiet:
                return now - started
            time.sleep(min(0.2, quiet - (now - last) + 0.01))
        return time.monotonic() - started

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> CountingProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the counting proxy did not start")

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._started.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # -- one client connection ---------------------------------------------------------------

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._connections += 1
        connection = self._connections
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream, limit=1 << 20)
        except OSError:
            self._refused += 1
            client_w.transport.abort()
            return
        forth = asyncio.ensure_future(self._forward(client_r, upstream_w, connection))
        back = asyncio.ensure_future(self._pipe(upstream_r, client_w))
        try:
            # Whichever side ends first (the client leaves, Directus closes or dies) ends both.
            await asyncio.wait({forth, back}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            for task in (forth, back):
                task.cancel()
            for w in (upstream_w, client_w):
                w.transport.abort()

    async def _forward(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, connection: int
    ) -> None:
        with contextlib.suppress(
            OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError
        ):
            await self._requests(reader, upstream, connection)

    async def _requests(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, connection: int
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            path, _, query = target.partition("?")
            upgrade = headers.get("upgrade", "").lower() == "websocket"
            with self._lock:
                self._log.append(
                    Request(time.monotonic(), method, path, query, connection, upgrade)
                )
            upstream.write(head)
            if upgrade:
                await upstream.drain()
                await self._pipe(reader, upstream)
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                await self._chunked(reader, upstream)
            elif (length := int(headers.get("content-length", "0") or 0)) > 0:
                upstream.write(await reader.readexactly(length))
            await upstream.drain()

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            upstream.write(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers, then the empty line.
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    upstream.write(line)
                upstream.write(b"\r\n")
                return
            upstream.write(await reader.readexactly(size + 2))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(1 << 16):
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
