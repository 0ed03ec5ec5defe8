"""A real-socket HTTP/1.1 server whose answers a test scripts, counting every request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_answer(status: str, payload: Any, **headers: str) -> Writer:
    body = json.dumps(payload).encode()

    async def write(writer: asyncio.StreamWriter) -> None:
        all_headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **headers,
        }
        writer.write(head(status, all_headers) + body)

    return write


def trickle(every: float = 0.2) -> Writer:
    """Headers at once, then one byte of body per ``every`` seconds, for ever."""

    async def write(writer: asyncio.StreamWriter) -> None:
        writer.write(
            head("200 OK", {"Content-Type": "application/json", "Content-Length": "10000"})
        )
        await writer.drain()
        writer.write(b'{"data": [')
        while True:
            await asyncio.sleep(every)
            writer.write(b" ")
            await writer.drain()

    return write


@dataclass
class Request:
    method: str
    path: str
    at: float


@dataclass
class ScriptedHTTPServer:
    """``answer(request)`` returns the writer of its response; every request is recorded."""

    answer: Callable[[Request], Writer] = field(
        default=lambda _r: json_answer("503 Service Unavailable", {"errors": []})
    )
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> ScriptedHTTPServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one connection, many requests
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = next(
                    (int(v) for k, _, v in (h.partition(": ") for h in lines[1:])
                     if k.lower() == "content-length"),
                    0,
                )  # fmt: skip
                if length:
                    await reader.readexactly(length)
                request = Request(method, path, time.monotonic())
                self.requests.append(request)
                await self.answer(request)(writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
