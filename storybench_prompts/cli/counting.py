"""What ``check`` reports of its own requests to Directus (it goes through no cache, so it
counts them itself, under the names the cache's stats use)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx

__all__ = ["CountingTransport"]


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests sent through it, their failures and answer times (to the
    headers)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        started = time.monotonic()
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            raise
        self.latencies.append(time.monotonic() - started)
        if response.status_code >= 400:
            self.errors[f"HTTP {response.status_code}"] += 1
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def as_dict(self) -> dict[str, Any]:
        latencies = self.latencies
        return {
            "origin_requests": self.requests,
            "origin_errors": dict(self.errors),
            "origin_latency_mean": sum(latencies) / len(latencies) if latencies else None,
            "origin_latency_max": max(latencies) if latencies else None,
            "origin_latency_last": latencies[-1] if latencies else None,
        }
