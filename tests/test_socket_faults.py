"""Broken and slow HTTP answers from a real socket server: typed errors, deadlines that
hold, and nothing written."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest

from storybench_prompts import (
    PROMPT_SETS,
    DirectusConnectionError,
    DirectusInvalidResponseError,
    DirectusSource,
    DirectusTimeoutError,
    DirectusTimeouts,
    InMemoryMirror,
    RetryPolicy,
)
from storybench_prompts.ops.sync import sync_one
from tests.factories import flat_set, raw_version

pytestmark = pytest.mark.anyio


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def ends_early(writer: asyncio.StreamWriter) -> None:
    writer.write(head("200 OK", {"Content-Type": "application/json", "Content-Length": "5000"}))
    writer.write(b'{"data": [{"id": 1, "version_number": 1, "sequences_in_set": [')


async def invalid_json(writer: asyncio.StreamWriter) -> None:
    body = b'{"data": [{"id": 1,, "version_number"'
    writer.write(
        head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body))})
        + body
    )


async def too_large(writer: asyncio.StreamWriter) -> None:
    writer.write(
        head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    )
    chunk = b'"' + b"x" * 4096 + b'"'
    for _ in range(64):  # 256 KiB, chunked so no Content-Length warns us in advance
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")


@pytest.fixture
async def broken_server(request) -> AsyncIterator[str]:
    behaviour = request.param

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await behaviour(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("broken_server", "error", "match"),
    [
        (ends_early, DirectusConnectionError, "RemoteProtocolError|ended|incomplete"),
        (invalid_json, DirectusInvalidResponseError, "not JSON"),
        (too_large, DirectusInvalidResponseError, "cap"),
    ],
    indirect=["broken_server"],
    ids=["ends-early", "invalid-json", "over-cap"],
)
async def test_broken_answers_are_typed_and_write_nothing(broken_server, error, match):
    mirror = InMemoryMirror([flat_set(1)], kind=PROMPT_SETS)
    before = await mirror.stored_hash(1)
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.002)
    async with DirectusSource(
        broken_server, "token", retry=retry, max_response_bytes=64 * 1024, kind=PROMPT_SETS
    ) as source:
        with pytest.raises(error, match=match):
            await source.get(1)
        result = await sync_one(source, mirror, 1)
    assert result.outcome == "failed"
    assert isinstance(result.error, error)
    assert await mirror.stored_hash(1) == before
    assert mirror.saves == 0


# -- deadlines against a body trickled just inside the read timeout ------------------------

CHUNK = 200
EVERY = 0.2  # seconds between chunks: well inside every read timeout below
BODY = 20_000  # the whole body would take BODY / CHUNK * EVERY = 20 s


class Trickler:
    """A loopback HTTP server that answers with a body sent a few bytes at a time, forever
    inside httpx's per-read timeout. The first ``fail_first`` connections get a quick 503
    instead; connections after the first ``answer_after`` get a quick, valid answer."""

    def __init__(self, fail_first: int = 0, answer_after: int | None = None) -> None:
        self.fail_first = fail_first
        self.answer_after = answer_after
        self.connections = 0
        self.body_bytes_sent = 0
        self.stop = asyncio.Event()
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.connections <= self.fail_first:
                body = (
                    b'{"errors":[{"message":"cold","extensions":{"code":"SERVICE_UNAVAILABLE"}}]}'
                )
                writer.write(
                    head(
                        "503 Service Unavailable",
                        {
                            "Content-Type": "application/json",
                            "Content-Length": str(len(body)),
                            "Retry-After": "0",
                        },
                    )
                    + body
                )
                await writer.drain()
                return
            if self.answer_after is not None and self.connections > self.answer_after:
                body = json.dumps({"data": [raw_version(1)]}).encode()
                writer.write(
                    head(
                        "200 OK",
                        {"Content-Type": "application/json", "Content-Length": str(len(body))},
                    )
                    + body
                )
                await writer.drain()
                return
            writer.write(
                head("200 OK", {"Content-Type": "application/json", "Content-Length": str(BODY)})
            )
            writer.write(b'{"data": [')
            await writer.drain()
            while not self.stop.is_set():
                writer.write(b" " * CHUNK)
                await writer.drain()
                self.body_bytes_sent += CHUNK
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), EVERY)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def trickler(request) -> AsyncIterator[Trickler]:
    trickler = Trickler(**getattr(request, "param", {}))
    server = await asyncio.start_server(trickler.handle, "127.0.0.1", 0)
    trickler.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield trickler
    finally:
        trickler.stop.set()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("trickler", [{"answer_after": 1}], indirect=True)
async def test_one_attempt_ends_at_its_deadline_however_slowly_the_body_comes(trickler):
    timeouts = DirectusTimeouts(connect=1.0, read=1.0, attempt=1.5)
    async with DirectusSource(trickler.url, "token", timeouts=timeouts, kind=PROMPT_SETS) as source:
        started = time.monotonic()
        with pytest.raises(DirectusTimeoutError, match="deadline of one attempt") as info:
            await source.get(1)
        elapsed = time.monotonic() - started
        # The cut connection is not reused: the next call gets a fresh one, and its answer.
        assert (await source.get(1)).version == 1
    assert "prompt set version 1" in str(info.value)
    assert 1.4 <= elapsed < 1.5 + 2.0
    # The server was still sending, each chunk inside the read timeout: only the attempt
    # deadline could have ended this, long before the body would have.
    assert 3 * CHUNK <= trickler.body_bytes_sent < BODY
    assert trickler.connections == 2  # the cut attempt (never retried), then the next call


@pytest.mark.parametrize("trickler", [{"fail_first": 1}], indirect=True)
async def test_the_retry_deadline_ends_an_attempt_in_progress(trickler):
    # The attempt deadline (30 s) is out of reach: only the retry deadline can stop it.
    timeouts = DirectusTimeouts(connect=1.0, read=1.0, attempt=30.0)
    retry = RetryPolicy(max_attempts=4, initial_backoff=0.01, deadline=1.5)
    async with DirectusSource(
        trickler.url, "token", timeouts=timeouts, retry=retry, kind=PROMPT_SETS
    ) as source:
        started = time.monotonic()
        with pytest.raises(DirectusTimeoutError, match=r"1\.5 s retry deadline \(attempt 2\)"):
            await source.get(1)
        elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 1.5 + 2.0
    assert trickler.connections == 2  # the 503, then the trickled answer
    assert 3 * CHUNK <= trickler.body_bytes_sent < BODY
