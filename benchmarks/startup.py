"""Start-up cost in fresh processes, beside a bare interpreter.

    .venv/bin/python -m benchmarks.startup [runs]

Measures, interleaved round by round so machine noise hits all alike:
  * ``python -c pass``                              (the floor)
  * ``python -c "import storybench_prompts"``       (goal: under 0.15 s)
  * ``storybench-prompts get latest --source mirror --json`` over a file mirror holding one
    set (goal: under 0.25 s wall time)
with the package's bytecode compiled first, as ``pip install`` leaves it.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import anyio

from storybench_prompts import PROMPT_SETS, FileMirror
from tests.factories import flat_set


def wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 15
    with tempfile.TemporaryDirectory(prefix="sbp-startup-") as mirror_dir:

        async def fill() -> None:
            await FileMirror(mirror_dir, kind=PROMPT_SETS).save(flat_set(7, sequences=5, prompts=3))

        anyio.run(fill)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "DIRECTUS_"))}
        env["STORYBENCH_PROMPTS_MIRROR_DIR"] = mirror_dir
        # As installed by pip: the package's bytecode compiled once and reused. (This machine
        # sets PYTHONDONTWRITEBYTECODE, which would make every start compile our modules.)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        spec = importlib.util.find_spec("storybench_prompts")
        assert spec is not None
        assert spec.origin is not None
        package = os.path.dirname(spec.origin)
        subprocess.run([sys.executable, "-m", "compileall", "-q", package], env=env, check=True)
        py = sys.executable
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "import storybench_prompts": [py, "-c", "import storybench_prompts"],
            "get latest --source mirror --json": [
                py, "-m", "storybench_prompts", "get", "latest", "--source", "mirror", "--json"
            ],
        }  # fmt: skip
        for cmd in commands.values():  # warm the OS caches once
            wall(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                times[name].append(wall(cmd, env))
    floor = statistics.median(times["python -c pass"])
    print(f"start-up, {runs} fresh processes each, median (p90):")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        extra = f"  {median / floor:.1f}x the floor, +{(median - floor) * 1000:.0f} ms"
        print(f"  {name:<36} {median * 1000:7.1f} ms ({p90 * 1000:.1f}){extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
