"""The demo: a local Directus with sample prompt sets, synced into the embedded file mirror,
then served from the mirror once Directus is gone.

    bash scripts/demo.sh        # or: python -m devserver.demo
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import anyio

from devserver.directus import DirectusServer, template_db
from devserver.sample_data import seed_all


def step(message: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}==> {message}{plain}", flush=True)


def cli(args: list[str], env: dict[str, str], *, check: bool = True) -> None:
    print(f"$ storybench-prompts {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "storybench_prompts", *args], env=env)
    if check and result.returncode != 0:
        raise SystemExit(f"demo step failed with exit code {result.returncode}")


def capture(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", "storybench_prompts", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


async def _edit_while_serving(server: DirectusServer, env: dict[str, str]) -> None:
    from storybench_prompts import Settings, build_repository

    settings = Settings(
        directus_url=env["DIRECTUS_URL"],
        directus_token=env["DIRECTUS_TOKEN"],
        mirror_dir=env["STORYBENCH_PROMPTS_MIRROR_DIR"],
        mongodb_uri=None,
    )
    async with build_repository(settings) as prompts:
        with anyio.fail_after(20):
            while (status := prompts.channel_status()) is None or status.state != "open":  # noqa: ASYNC110
                await anyio.sleep(0.02)
        before = await prompts.latest()
        first_sequence = next(iter(before.sequences))
        print(f"serving v{before.version} ({before.config_hash}); realtime channel open")
        with server.admin() as admin:
            row = admin.get(
                "/items/prompts",
                params={"filter[text][_contains]": "(v3)", "sort": "id", "limit": "1"},
            ).json()["data"][0]
        new_text = row["text"].replace("(v3)", "(v3, typo fixed)")
        server.update_item("prompts", int(row["id"]), {"text": new_text})
        patched = time.monotonic()
        while True:
            after = await prompts.latest()
            texts = [p.text for sequence in after.sequences.values() for p in sequence]
            if new_text in texts:
                break
            await anyio.sleep(0.002)
        took = (time.monotonic() - patched) * 1000
        print(
            f"served the edit {took:.0f} ms after Directus saved it: v{after.version} is now "
            f"{after.config_hash} (latest_ttl is {settings.latest_ttl:g} s; no polling)"
        )
        print(
            f"first prompts of {first_sequence} unchanged: {before.sequences[first_sequence][0].name}"
        )


def main() -> int:
    step(
        "Installing Node 22 and Directus from the npm registry (cached; the first run takes minutes)"
    )
    template = template_db()

    step(
        "Starting a local Directus with sample prompt and evaluation sets "
        "(v1-v3 published, v4 draft, v5 archived)"
    )
    started = time.monotonic()
    server = DirectusServer.start_from(template, realtime=True)
    try:
        seed_all(server)
        print(f"Directus is up at {server.url} ({time.monotonic() - started:.0f} s)")
        with tempfile.TemporaryDirectory(prefix="storybench-prompts-demo-") as mirror_dir:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MONGODB_")}
            env |= {
                "DIRECTUS_URL": server.url,
                "DIRECTUS_TOKEN": server.readonly_token,
                "STORYBENCH_PROMPTS_MIRROR_DIR": mirror_dir,
                "STORYBENCH_PROMPTS_FALLBACK_AFTER": "1",
            }
            print(f"The file mirror (embedded default) lives in {mirror_dir} for this demo")

            step("Sync every published version from Directus into the mirror")
            cli(["sync", "--all"], env)
            step("Sync again: nothing changed, so nothing is written")
            cli(["sync", "--all"], env)
            step("Directus beside the mirror")
            cli(["versions"], env)
            step("Check every part of the stack")
            cli(["check"], env)
            step("The latest prompt set, read through the cache from Directus")
            cli(["get", "latest"], env)
            step("The evaluator's criteria, served the same way")
            cli(["get", "latest", "--kind", "evaluations"], env)
            old_hash = json.loads(capture(["get", "3", "--json"], env))["config_hash"]
            step("An editor fixes a typo in v3 while a repository is serving it")
            anyio.run(_edit_while_serving, server, env)
            step(f"A run that recorded v3 as {old_hash} still gets exactly those prompts")
            cli(["get", "--hash", old_hash], env)

            step(f"Stopping Directus (PID {server.pid}): from now on it is down")
            server.kill()
            step(
                "The same request again: served from the mirror at the first refusal, and it says so"
            )
            cli(["get", "latest"], env)
            step("As JSON, the provenance a benchmark run records")
            cli(["get", "latest", "--json", "--source", "mirror"], env)
            step("A sync needs Directus, so it fails, clearly and with a non-zero exit")
            cli(["sync"], env, check=False)
    finally:
        server.stop()
    step("Done: Directus stopped and the demo mirror removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
