"""Time to the first answer while Directus is down (connection refused), mirror warm.

    .venv/bin/python -m benchmarks.failover [runs]

Side by side in one run:
  * in-process: ``CachingRepository.get`` as built by ``build_repository()`` (fails over at the
    first refusal) against waiting out the retry policy first, then reading the mirror (what
    the cache did before it failed over at the first refusal);
  * whole command: ``storybench-prompts get 3 --json`` and ``get latest --json`` in a fresh
    process, beside ``python -c pass``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from devserver._process import free_port
from storybench_prompts import (
    PROMPT_SETS,
    DirectusConnectionError,
    FileMirror,
    Settings,
    build_repository,
    build_source,
)
from tests.factories import flat_set


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms (p90 {p90 * 1000:.1f})"


async def in_process(settings: Settings, runs: int) -> tuple[list[float], list[float]]:
    ours: list[float] = []
    waited: list[float] = []
    for _ in range(runs):
        async with build_repository(settings) as repo:
            started = time.perf_counter()
            await repo.get(3)
            ours.append(time.perf_counter() - started)
        source = build_source(settings)
        mirror = FileMirror(settings.resolved_mirror_dir(), kind=PROMPT_SETS)
        started = time.perf_counter()
        try:
            await source.get(3)
        except DirectusConnectionError:
            await mirror.get(3)
        waited.append(time.perf_counter() - started)
        await source.aclose()
    return ours, waited


FIRST_ANSWER = """
import asyncio, sys, time
from storybench_prompts import build_repository

async def main():
    async with build_repository() as repo:  # the settings from the environment
        started = time.perf_counter()
        await repo.get(3)
        print(time.perf_counter() - started)

asyncio.run(main())
"""
"""The first ``get`` of a fresh process: what its lazy imports cost on the first call."""


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 10
    with tempfile.TemporaryDirectory(prefix="sbp-failover-") as mirror_dir:

        async def fill() -> None:
            for v in (1, 2, 3):
                await FileMirror(mirror_dir, kind=PROMPT_SETS).save(
                    flat_set(v, sequences=5, prompts=3)
                )

        anyio.run(fill)
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused at once
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "DIRECTUS_"))}
        env |= {
            "DIRECTUS_URL": url,
            "DIRECTUS_TOKEN": "token",
            "STORYBENCH_PROMPTS_MIRROR_DIR": mirror_dir,
            "STORYBENCH_PROMPTS_REALTIME": "off",
        }
        settings = Settings(
            directus_url=url,
            directus_token="token",
            mirror_dir=Path(mirror_dir),
            mongodb_uri=None,
            realtime="off",
        )
        ours, waited = anyio.run(in_process, settings, runs)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "get 3 --json": [sys.executable, "-m", "storybench_prompts", "get", "3", "--json"],
            "get latest --json": [
                sys.executable, "-m", "storybench_prompts", "get", "latest", "--json"
            ],
        }  # fmt: skip
        first: list[float] = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-c", FIRST_ANSWER],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            first.append(float(done.stdout.split()[-1]))
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                started = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - started)
    print(f"Directus refusing connections, mirror warm, {runs} runs each:")
    print(f"  in-process get(3), failing over at the first refusal: {ms(ours)}")
    print(f"  in-process, retries waited out, then the mirror:      {ms(waited)}")
    print(f"  the first get(3) of a fresh process (goal < 50 ms):   {ms(first)}")
    print(
        f"  ratio: {statistics.median(waited) / statistics.median(ours):.0f}x faster to the first "
        "answer"
    )
    for name, values in times.items():
        print(f"  {name:<20} {ms(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
