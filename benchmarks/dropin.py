"""The drop-in's warm path, side by side with its floor and with the repository it wraps.

    .venv/bin/python -m benchmarks.dropin [rounds]

Starts its own seeded Directus, warms the shared cache once, then measures in one event loop,
interleaved batch by batch so machine noise hits all alike:

  * floor: ``await floor()``, a coroutine returning a cached object;
  * ``await repo.latest()`` on the ``CachingRepository`` the drop-in shares (a fresh hit);
  * ``await DirectusClient().fetch_prompts()``, a new instance per call as storybench's call
    sites do (URL and token read from the environment), and the same with them passed in.

Prints each median and p99 per call and the ratios to the floor and to the repository.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from devserver.directus import running_directus
from storybench_prompts import CachingRepository
from storybench_prompts.compat.storybench.client import DirectusClient
from storybench_prompts.compat.storybench.registry import _REGISTRY

BATCH = 2000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.3f} µs"


async def batch(call: Callable[[], Awaitable[Any]], n: int = BATCH) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - started) / n


async def measure(url: str, token: str, rounds: int) -> None:
    served = await DirectusClient().fetch_prompts()
    assert served is not None
    shared = _REGISTRY[asyncio.get_running_loop()][(url, token)]
    repository = shared.prompts
    assert isinstance(repository, CachingRepository)
    cached = await repository.latest()

    async def floor() -> Any:
        return cached

    def from_env() -> Awaitable[Any]:
        return DirectusClient().fetch_prompts()

    def with_arguments() -> Awaitable[Any]:
        return DirectusClient(url, token).fetch_prompts()

    # The warm path must hand out the very object it served first, and ask nobody.
    assert await from_env() is served
    assert await with_arguments() is served
    requests_before = repository.stats().origin_requests

    contenders: dict[str, Callable[[], Awaitable[Any]]] = {
        "floor": floor,
        "repository": repository.latest,
        "drop-in": from_env,
        "drop-in (args)": with_arguments,
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(10):  # warm-up
        for call in contenders.values():
            await batch(call, 200)
    for _ in range(rounds):
        for name, call in contenders.items():
            samples[name].append(await batch(call))
    assert repository.stats().origin_requests == requests_before

    median = {name: statistics.median(values) for name, values in samples.items()}
    labels = {
        "floor": "floor (await a coroutine returning a cached object)",
        "repository": "await repo.latest() (CachingRepository, fresh hit)",
        "drop-in": "await DirectusClient().fetch_prompts() (env URL/token)",
        "drop-in (args)": "await DirectusClient(url, token).fetch_prompts()",
    }
    print(f"Python {platform.python_version()}, {rounds} rounds of {BATCH} calls each")
    for name, values in samples.items():
        print(f"  {labels[name]:<58} median {us(median[name])}, p99 {us(pct(values, 0.99))}")
    for name in ("repository", "drop-in", "drop-in (args)"):
        print(
            f"  {name:<15} / floor: {median[name] / median['floor']:.2f}x"
            + (
                f"   / repository: {median[name] / median['repository']:.2f}x"
                if name != "repository"
                else ""
            )
        )


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 100
    with tempfile.TemporaryDirectory(prefix="sbp-dropin-") as mirror_dir:
        os.environ.pop("MONGODB_URI", None)
        os.environ["STORYBENCH_PROMPTS_MIRROR_DIR"] = mirror_dir
        with running_directus() as server:
            os.environ["DIRECTUS_URL"] = server.url
            os.environ["DIRECTUS_TOKEN"] = server.readonly_token
            asyncio.run(measure(server.url, server.readonly_token, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
