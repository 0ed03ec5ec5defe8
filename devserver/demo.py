"""The demo: what the layer buys storybench, shown against a real local Directus.

    bash scripts/demo.sh        # or: python -m devserver.demo

A local Directus with sample prompt sets, synced into the embedded file mirror; then a cache
hit and its time, an editor's change arriving through the realtime channel, a cold start
(Directus frozen with SIGSTOP) answered by the mirror after ``fallback_after``, and the
failover at the first refusal once Directus is killed. Long texts are cut short.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from devserver.directus import DirectusServer, template_db
from devserver.sample_data import seed_all

if TYPE_CHECKING:
    from storybench_prompts import Settings, VersionedContent

T = TypeVar("T")

WIDTH = 100
FALLBACK_AFTER = 1.0


def step(message: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}==> {message}{plain}", flush=True)


def cut(line: str, width: int = WIDTH) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def cli(
    args: list[str],
    env: dict[str, str],
    *,
    keep: int | None = None,
    only: Callable[[str], bool] | None = None,
    expect: int = 0,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI, print its command and its output (stderr first, then at most ``keep``
    stdout lines, those ``only`` accepts), each cut to the width; stop the demo on an
    unexpected exit code."""
    print(f"$ storybench-prompts {shlex.join(args)}", flush=True)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "storybench_prompts", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    for line in result.stderr.splitlines():
        print(cut(line))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if only is not None:
        lines = [line for line in lines if only(line)]
    shown = lines if keep is None else lines[:keep]
    for line in shown:
        print(cut(line))
    if len(shown) < len(lines):
        print(f"   ... {len(lines) - len(shown)} more lines")
    if result.returncode != expect:
        raise SystemExit(f"demo step failed with exit code {result.returncode}")
    if expect:
        print(f"(exit code {result.returncode}, after {took:.1f} s)")
    return result


def settings_for(env: dict[str, str], **overrides: Any) -> Settings:
    from storybench_prompts import Settings

    return Settings(
        directus_url=env["DIRECTUS_URL"],
        directus_token=env["DIRECTUS_TOKEN"],
        mirror_dir=env["STORYBENCH_PROMPTS_MIRROR_DIR"],
        mongodb_uri=None,
        fallback_after=FALLBACK_AFTER,
        **overrides,
    )


def served(content: VersionedContent, took: float) -> str:
    p = content.provenance
    assert p is not None
    flags = [f for f, on in (("hedged", p.hedged), ("stale", p.stale)) if on]
    if p.origin_error:
        flags.append(f"Directus failed: {p.origin_error}")
    extra = f" [{', '.join(flags)}]" if flags else ""
    return (
        f"v{content.version} {content.config_hash} from {p.source}{extra} in {took * 1000:.2f} ms"
    )


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await call
    return result, time.perf_counter() - started


async def cache_and_realtime(server: DirectusServer, env: dict[str, str]) -> str:
    """A miss then a hit; then an editor's change arriving through the realtime channel.
    Returns the config_hash v3 had before the edit."""
    from storybench_prompts import build_repository

    async with build_repository(settings_for(env)) as prompts:
        with anyio.fail_after(20):  # once open, the channel says when something changes
            while (status := prompts.channel_status()) is None or status.state != "open":  # noqa: ASYNC110
                await anyio.sleep(0.02)
        first, took = await timed(prompts.latest())
        print(f"first  latest(): {served(first, took)}")
        again, took = await timed(prompts.latest())
        print(f"second latest(): {served(again, took)} (a cache hit)")
        before = again
        step("An editor fixes a typo in v3 while it is being served (realtime, no polling)")
        with server.admin() as admin:
            row = admin.get(
                "/items/prompts",
                params={"filter[text][_contains]": "(v3)", "sort": "id", "limit": "1"},
            ).json()["data"][0]
        new_text = row["text"].replace("(v3)", "(v3, typo fixed)")
        server.update_item("prompts", int(row["id"]), {"text": new_text})
        saved = time.monotonic()
        print(f"PATCH /items/prompts/{row['id']}: {cut(new_text, 60)!r}")
        while True:
            after = await prompts.latest()
            if any(new_text == p.text for s in after.sequences.values() for p in s):
                break
            await anyio.sleep(0.002)
        print(
            f"served {(time.monotonic() - saved) * 1000:.0f} ms after Directus saved it: v3 "
            f"{before.config_hash} -> {after.config_hash} (latest_ttl is 60 s)"
        )
        return before.config_hash


async def one_read(env: dict[str, str], version: int | None) -> None:
    """A fresh process's first read (nothing cached), realtime off: what a run sees."""
    from storybench_prompts import build_repository

    async with build_repository(settings_for(env, realtime="off")) as prompts:
        content, took = await timed(prompts.latest() if version is None else prompts.get(version))
        print(served(content, took))


def main() -> int:
    # The library's own warnings (the outage, the drift) would repeat what each step prints.
    logging.basicConfig(level=logging.ERROR)
    step(
        "Installing Node 22 and Directus from the npm registry (cached; the first run takes minutes)"
    )
    template = template_db()
    step("Starting a local Directus with sample sets (v1-v3 published, v4 draft, v5 archived)")
    started = time.monotonic()
    server = DirectusServer.start_from(template, realtime=True)
    try:
        seed_all(server)
        with tempfile.TemporaryDirectory(prefix="storybench-prompts-demo-") as mirror_dir:
            print(
                f"Directus is up at {server.url} ({time.monotonic() - started:.0f} s); "
                f"the file mirror is {mirror_dir}"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("MONGODB_")}
            env |= {
                "DIRECTUS_URL": server.url,
                "DIRECTUS_TOKEN": server.readonly_token,
                "STORYBENCH_PROMPTS_MIRROR_DIR": mirror_dir,
                "STORYBENCH_PROMPTS_FALLBACK_AFTER": f"{FALLBACK_AFTER:g}",
            }

            step("Sync every published version, both kinds, into the mirror")
            cli(["sync", "--all"], env, only=lambda line: " v" not in line.split(":")[0])
            step("Check every part of the stack")
            cli(["check"], env)

            step("Read through the cache: the first read asks Directus, the second is a hit")
            old_hash = anyio.run(cache_and_realtime, server, env)

            step(f"A run that recorded v3 as {old_hash} still gets exactly those prompts")
            cli(["get", "--hash", old_hash[:8]], env, keep=3)

            step(
                f"Cold start: Directus frozen (SIGSTOP); the mirror answers after "
                f"fallback_after = {FALLBACK_AFTER:g} s"
            )
            with server.paused():
                anyio.run(one_read, env, 2)
                cli(["get", "2"], env, keep=1)
                cli(["get", "2", "--strict"], env, expect=4)

            step(f"Directus killed (PID {server.pid}): served at the first refusal")
            server.kill()
            anyio.run(one_read, env, None)
            cli(["get", "latest"], env, keep=1)
            step("A sync needs Directus: it fails clearly, with a non-zero exit code")
            cli(["sync"], env, expect=1)
    finally:
        server.stop()
    step("Done: Directus stopped and the demo mirror removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
