"""Publish-to-served latency across processes, and Directus requests while nothing changes.

    .venv/bin/python -m benchmarks.freshness [edits] [processes]

Starts a local Directus with realtime on, then, side by side in one run:
  * ours: N processes, each with ``build_repository()`` as a storybench worker would build it
    (realtime ``auto``, default TTLs), reading ``latest()`` every 10 ms;
  * the baseline the TTL gives today: the same processes with realtime off. The default
    ``latest_ttl`` is 60 s; to keep the run short the baseline uses 2 s, and its latency scales
    with the TTL (a change is seen up to one TTL later).
Each edit PATCHes a prompt of the latest set through the admin REST API; a process reports the
moment it first serves the new text. Then every process keeps reading for IDLE seconds with no
change, and the Directus requests they made are counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import anyio

from devserver.directus import DirectusServer, template_db
from devserver.sample_data import seed_all

IDLE = float(os.environ.get("IDLE_SECONDS", "30"))
BASELINE_TTL = 2.0


async def _worker(url: str, token: str, mirror_dir: str, realtime: str, ttl: float) -> None:
    import logging

    from storybench_prompts import Settings, build_repository

    logging.getLogger("storybench_prompts").setLevel(logging.ERROR)  # drift notes are expected
    settings = Settings(
        directus_url=url,
        directus_token=token,
        mirror_dir=Path(mirror_dir),
        mongodb_uri=None,
        realtime=realtime,
        latest_ttl=ttl,
    )
    async with build_repository(settings) as repo:
        if realtime != "off":
            with anyio.fail_after(30):
                while (status := repo.channel_status()) is None or status.state != "open":
                    await anyio.sleep(0.01)
        last = None
        next_report = time.monotonic() + 1
        print(json.dumps({"ready": True}), flush=True)
        while True:
            prompt_set = await repo.latest()
            text = next(iter(prompt_set.sequences.values()))[0].text
            if text != last:
                last = text
                print(json.dumps({"text": text, "at": time.monotonic()}), flush=True)
            if time.monotonic() >= next_report:
                next_report += 1
                print(json.dumps({"requests": repo.stats().origin_requests}), flush=True)
            await anyio.sleep(0.01)


def _pump(stream: Any, queue: Queue[tuple[int, dict[str, Any]]], index: int) -> None:
    for line in stream:
        try:
            queue.put((index, json.loads(line)))
        except ValueError:
            continue


def _first_prompt_id(server: DirectusServer) -> int:
    with server.admin() as admin:
        rows = admin.get(
            "/items/prompt_set_versions",
            params={
                "filter[status][_eq]": "published",
                "sort": "-version_number",
                "limit": "1",
                "fields": "sequences_in_set.prompt_sequences_id.prompts_in_sequence.prompts_id.*",
                "deep[sequences_in_set][_limit]": "1",
            },
        ).json()["data"]
    prompts = rows[0]["sequences_in_set"][0]["prompt_sequences_id"]["prompts_in_sequence"]
    first = min(prompts, key=lambda p: p["prompts_id"]["order_in_sequence"])
    return int(first["prompts_id"]["id"])


def run_side(
    server: DirectusServer, label: str, realtime: str, ttl: float, edits: int, processes: int
) -> dict[str, Any]:
    queue: Queue[tuple[int, dict[str, Any]]] = Queue()
    workers = []
    with tempfile.TemporaryDirectory(prefix="sbp-fresh-") as tmp:
        for i in range(processes):
            worker = subprocess.Popen(
                [
                    sys.executable, "-m", "benchmarks.freshness", "--worker",
                    server.url, server.readonly_token, f"{tmp}/m{i}", realtime, str(ttl),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            workers.append(worker)
            threading.Thread(target=_pump, args=(worker.stdout, queue, i), daemon=True).start()
        try:
            ready: set[int] = set()
            requests: dict[int, int] = {}
            while len(ready) < processes:
                index, message = queue.get(timeout=60)
                ready |= {index} if message.get("ready") else set()
            prompt_id = _first_prompt_id(server)
            latencies: list[float] = []
            for n in range(edits):
                text = f"{label} edit {n} at {time.time()}"
                server.update_item("prompts", prompt_id, {"text": text})
                returned = time.monotonic()
                seen: set[int] = set()
                deadline = returned + ttl * 3 + 10
                while len(seen) < processes and time.monotonic() < deadline:
                    try:
                        index, message = queue.get(timeout=0.5)
                    except Empty:
                        continue
                    if message.get("text") == text and index not in seen:
                        seen.add(index)
                        latencies.append(message["at"] - returned)
                    if "requests" in message:
                        requests[index] = message["requests"]
                missing = processes - len(seen)
                if missing:
                    print(f"  {label}: {missing} process(es) never served edit {n}")
                time.sleep(0.2)
            # Idle: nobody edits; count what the processes ask of Directus meanwhile.
            time.sleep(1.5)
            while not queue.empty():
                index, message = queue.get()
                if "requests" in message:
                    requests[index] = message["requests"]
            before = sum(requests.values())
            idle_until = time.monotonic() + IDLE
            while time.monotonic() < idle_until:
                try:
                    index, message = queue.get(timeout=0.5)
                except Empty:
                    continue
                if "requests" in message:
                    requests[index] = message["requests"]
            after = sum(requests.values())
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
                if worker.stdout is not None:
                    worker.stdout.close()
    ordered = sorted(latencies)
    return {
        "label": label,
        "samples": len(latencies),
        "p50": statistics.median(ordered) if ordered else float("nan"),
        "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] if ordered else 0,
        "idle_requests_per_minute": (after - before) * 60 / IDLE,
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--worker":
        url, token, mirror_dir, realtime, ttl = argv[1:6]
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_worker, url, token, mirror_dir, realtime, float(ttl))
        return 0
    edits = int(argv[0]) if argv else 10
    processes = int(argv[1]) if len(argv) > 1 else 8
    server = DirectusServer.start_from(
        template_db(), realtime=True, env_overrides={"WEBSOCKETS_HEARTBEAT_PERIOD": "30"}
    )
    try:
        seed_all(server)
        ours = run_side(server, "realtime", "auto", 60.0, edits, processes)
        baseline = run_side(server, "ttl", "off", BASELINE_TTL, edits, processes)
    finally:
        server.stop()
    print(f"publish-to-served, {processes} processes x {edits} edits (from the PATCH's response):")
    for r in (ours, baseline):
        print(
            f"  {r['label']:<9} p50 {r['p50'] * 1000:8.1f} ms   p99 {r['p99'] * 1000:8.1f} ms   "
            f"({r['samples']} samples); idle: {r['idle_requests_per_minute']:.1f} Directus "
            f"requests/min across {processes} processes"
        )
    print(
        f"  ratio p99 (ttl {BASELINE_TTL:g} s / realtime): {baseline['p99'] / ours['p99']:.0f}x; "
        f"with the default latest_ttl of 60 s the TTL's bound is 60 s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
