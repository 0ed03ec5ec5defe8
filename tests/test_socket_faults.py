"""Broken HTTP answers from a real socket server: typed errors, and nothing written."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from storybench_prompts import (
    DirectusConnectionError,
    DirectusInvalidResponseError,
    DirectusSource,
    InMemoryMirror,
    RetryPolicy,
)
from storybench_prompts._sync import sync_one
from tests.factories import flat_set

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
    mirror = InMemoryMirror([flat_set(1)])
    before = await mirror.stored_hash(1)
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.002)
    async with DirectusSource(
        broken_server, "token", retry=retry, max_response_bytes=64 * 1024
    ) as source:
        with pytest.raises(error, match=match):
            await source.get(1)
        result = await sync_one(source, mirror, 1)
    assert result.outcome == "failed"
    assert isinstance(result.error, error)
    assert await mirror.stored_hash(1) == before
    assert mirror.saves == 0
