"""One reader process of the scale benchmark, as a storybench worker would run it.

    python -m benchmarks.scale_worker URL TOKEN MIRROR_DIR VERSIONS

Builds the whole stack with ``build_repository(Settings(...))`` (file mirror in MIRROR_DIR,
realtime ``auto``, default TTLs), waits for the realtime channel to be open, caches versions
1..VERSIONS with ``get(v)`` and ``latest()``, then reads in a loop every ~10 ms.

Talks JSON lines. On stdin it takes ``{"watch": [v, ...], "seq": n}``: the versions to read
each iteration (besides ``latest()``). On stdout it writes ``{"ready": ...}`` once warm, then
one line per iteration::

    {"t": <time.monotonic() at the end>, "seq": n, "d": <slowest call, s>,
     "s": <status().state>, "c": <channel state>, "r": <origin requests so far>,
     "h": {"<v>": "<config_hash>", ...}, "e": "<error>"}

``h`` holds the hashes that changed since the previous line (all of them on the first line
after a new ``watch``), so a line says what every watched version was served as.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio

from storybench_prompts import Settings, build_repository

READ_EVERY = 0.01
WARM_CONCURRENCY = 8


class _Commands:
    def __init__(self) -> None:
        self.watch: list[int] = []
        self.seq = 0
        self.closed = False

    def read(self) -> None:
        for line in sys.stdin:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "watch" in message:
                # One assignment each: the reader sees either the old or the new pair.
                self.watch, self.seq = [int(v) for v in message["watch"]], int(message["seq"])
        self.closed = True


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _run(url: str, token: str, mirror_dir: str, versions: int) -> None:
    settings = Settings(
        _env_file=None,
        directus_url=url,
        directus_token=token,
        mirror_dir=Path(mirror_dir),
        mongodb_uri=None,
    )
    commands = _Commands()
    threading.Thread(target=commands.read, daemon=True).start()
    started = time.monotonic()
    async with build_repository(settings) as repo:
        with anyio.fail_after(60):
            while (status := repo.channel_status()) is None or status.state != "open":
                await anyio.sleep(0.01)
        opened = time.monotonic()
        limiter = anyio.CapacityLimiter(WARM_CONCURRENCY)

        async def warm(v: int) -> None:
            async with limiter:
                await repo.get(v)

        async with anyio.create_task_group() as tg:
            for v in range(1, versions + 1):
                tg.start_soon(warm, v)
        await repo.latest()
        _emit(
            {
                "ready": True,
                "channel_s": opened - started,
                "warm_s": time.monotonic() - opened,
                "r": repo.stats().origin_requests,
            }
        )
        served: dict[int, str] = {}
        seq = -1
        while not commands.closed:
            watch, now_seq = commands.watch, commands.seq
            if now_seq != seq:
                seq, served = now_seq, {}
            changed: dict[str, str] = {}
            slowest = 0.0
            error = None
            reads: list[int | None] = [*watch, None]  # None: latest()
            for version in reads:
                t0 = time.monotonic()
                try:
                    content = await (repo.latest() if version is None else repo.get(version))
                except Exception as exc:  # reported, never fatal: the reader keeps reading
                    error = f"{type(exc).__name__}: {exc}"[:200]
                    continue
                finally:
                    slowest = max(slowest, time.monotonic() - t0)
                if version is not None and served.get(version) != content.config_hash:
                    served[version] = changed[str(version)] = content.config_hash
            channel = repo.channel_status()
            line: dict[str, Any] = {
                "t": time.monotonic(),
                "seq": seq,
                "d": round(slowest, 6),
                "s": str(repo.status().state),
                "c": str(channel.state) if channel is not None else None,
                "r": repo.stats().origin_requests,
            }
            if changed:
                line["h"] = changed
            if error:
                line["e"] = error
            _emit(line)
            await anyio.sleep(READ_EVERY)


def main(argv: list[str]) -> int:
    url, token, mirror_dir, versions = argv[:4]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        anyio.run(_run, url, token, mirror_dir, int(versions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
