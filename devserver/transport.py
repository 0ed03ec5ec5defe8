"""An httpx transport that counts the requests that really leave for the server."""

from __future__ import annotations

import time

import httpx


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts requests, and notes when each one ended and how (for timing from a failure)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests = 0
        self.endings: list[tuple[float, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            self.endings.append((time.monotonic(), type(exc).__name__))
            raise
        self.endings.append((time.monotonic(), str(response.status_code)))
        return response

    def first_failure_at(self) -> float | None:
        return next((t for t, how in self.endings if not how.startswith("2")), None)

    async def aclose(self) -> None:
        await self.inner.aclose()
