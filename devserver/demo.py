"""The demo: a local Directus with sample prompt sets, synced into the embedded file mirror,
then served from the mirror once Directus is gone.

    bash scripts/demo.sh        # or: python -m devserver.demo
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time

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
    server = DirectusServer.start_from(template)
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

            step(f"Stopping Directus (PID {server.pid}): from now on it is down")
            server.kill()
            step("The same request again: served from the mirror, and it says so")
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
