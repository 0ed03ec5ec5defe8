"""Cost per change, not per version: Directus requests for each kind of event, at scale.

    .venv/bin/python -m benchmarks.scale [--versions 50 200] [--workers 2 4]
        [--idle 10] [--window 10] [--restart-window 60] [--json results.json]
        [--events idle edit_one edit_shared nested_create ten_edits restart sync cold_get]

For each V (versions) a fresh local Directus with realtime on is seeded with V published
prompt-set versions (each with its own two sequences of three prompts, plus one sequence
every version shares) and the evaluation samples. A counting proxy (benchmarks.scale_proxy)
stands in front of it; everything the library sends goes through the proxy, while the
benchmark's own edits (admin token) go to Directus directly and are not counted.

For each W (workers), W processes (benchmarks.scale_worker) each build ``build_repository()``
on the proxy's URL, wait for the realtime channel, cache every version and ``latest()``, and
read every ~10 ms, reporting what they serve. The events, one after the other:

  idle                nobody edits for --idle seconds
  edit one            a prompt only one version uses is PATCHed
  edit shared         a prompt of the sequence all V versions share is PATCHed
  nested create       a draft version with its own sequences and prompts, in one POST
  10 edits            prompts of 10 different versions, 0.2 s apart
  restart             Directus killed and started again (same port, same SQLite file)
Once per V, with no worker running: ``storybench-prompts sync --all`` twice over one file
mirror (the second, nothing changed, is the one measured) and a cold ``storybench-prompts
get 1`` (and ``get latest``) in a fresh process with realtime on.

Requests after an edit are counted for --window seconds from the PATCH; any that come later
(until the proxy has been quiet for 2 s) are shown as "+N later".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.scale_proxy import CountingProxy, Request
from benchmarks.scale_seed import Seeded, seed, version_payload
from devserver.directus import ADMIN_TOKEN, DirectusServer, template_db

WORKER_EVENTS = ("idle", "edit_one", "edit_shared", "nested_create", "ten_edits", "restart")
EVENTS = (*WORKER_EVENTS, "sync", "cold_get")

QUIET = 2.0
"""Seconds without a request at the proxy that count as "settled"."""


# -- the worker processes -----------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    log: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    ready: dict[str, Any] | None = None
    seq: int = -1
    hashes: dict[int, str] = field(default_factory=dict)
    """What the worker served last for each watched version (under the pool's lock)."""


class WorkerPool:
    """W reader processes and what they report."""

    def __init__(self, url: str, token: str, versions: int, count: int, tmp: Path) -> None:
        self._lock = threading.Lock()
        self.workers: list[_Worker] = []
        self._seq = 0
        for i in range(count):
            log = tmp / f"worker-{i}.log"
            with log.open("w") as err:
                process = subprocess.Popen(
                    [
                        sys.executable, "-m", "benchmarks.scale_worker",
                        url, token, str(tmp / f"mirror-{i}"), str(versions),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    cwd=Path(__file__).resolve().parent.parent,
                )  # fmt: skip
            worker = _Worker(process, log)
            self.workers.append(worker)
            threading.Thread(target=self._pump, args=(worker,), daemon=True).start()

    def _pump(self, worker: _Worker) -> None:
        assert worker.process.stdout is not None
        for text in worker.process.stdout:
            try:
                line = json.loads(text)
            except ValueError:
                continue
            with self._lock:
                if line.get("ready"):
                    worker.ready = line
                    continue
                if line["seq"] != worker.seq:
                    worker.seq, worker.hashes = line["seq"], {}
                for v, h in line.get("h", {}).items():
                    worker.hashes[int(v)] = h
                worker.lines.append(line)

    def wait_ready(self, timeout: float = 600.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in self.workers:
                if w.process.poll() is not None:
                    raise RuntimeError(f"a worker exited; its log:\n{w.log.read_text()[-3000:]}")
            with self._lock:
                if all(w.ready for w in self.workers):
                    return [dict(w.ready or {}) for w in self.workers]
            time.sleep(0.1)
        raise RuntimeError("workers not ready in time")

    def watch(self, versions: Iterable[int], timeout: float = 30.0) -> list[dict[int, str]]:
        """Have every worker read ``versions``; return what each serves for them now."""
        versions = sorted(set(versions))
        self._seq += 1
        seq = self._seq
        command = json.dumps({"watch": versions, "seq": seq}) + "\n"
        for w in self.workers:
            assert w.process.stdin is not None
            w.process.stdin.write(command)
            w.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(w.seq == seq and len(w.hashes) == len(versions) for w in self.workers):
                    return [dict(w.hashes) for w in self.workers]
            time.sleep(0.05)
        raise RuntimeError("workers did not take the new watch list in time")

    def mark(self) -> list[int]:
        with self._lock:
            return [len(w.lines) for w in self.workers]

    def lines_since(self, mark: list[int]) -> list[list[dict[str, Any]]]:
        with self._lock:
            return [list(w.lines[m:]) for w, m in zip(self.workers, mark, strict=True)]

    def log_marks(self) -> list[int]:
        return [w.log.stat().st_size for w in self.workers]

    def log_since(self, marks: list[int]) -> list[str]:
        """What the workers logged (warnings and errors) since ``marks``."""
        out: list[str] = []
        for w, m in zip(self.workers, marks, strict=True):
            with w.log.open("rb") as f:
                f.seek(m)
                out += f.read().decode(errors="replace").splitlines()
        return out

    def trim(self) -> None:
        """Forget old lines (memory), keeping the live view of what is served."""
        with self._lock:
            for w in self.workers:
                w.lines.clear()

    def stop(self) -> None:
        for w in self.workers:
            if w.process.stdin is not None:
                with contextlib.suppress(OSError):
                    w.process.stdin.close()
            w.process.terminate()
        for w in self.workers:
            try:
                w.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait(timeout=30)
            if w.process.stdout is not None:
                w.process.stdout.close()


@dataclass
class Readers:
    """What the readers did over a scenario's window."""

    served_after: float | None
    """Seconds from ``since`` until every worker served a new hash for every target version
    (None: some never did within the window)."""
    max_wait: float
    interrupted: bool
    """A reader saw ``status().state == "interrupted"``, or a worker logged an outage (an
    interruption can be shorter than one read loop: the next answer ends it)."""
    errors: int
    channel_down: bool
    targets: int
    """Versions whose change was awaited (0: none, ``served_after`` is None)."""


def _readers(
    lines: list[list[dict[str, Any]]],
    baseline: list[dict[int, str]],
    targets: Iterable[int],
    since: float,
) -> Readers:
    targets = list(targets)
    served: list[float | None] = []
    max_wait = 0.0
    interrupted = False
    errors = 0
    channel_down = False
    for worker_lines, base in zip(lines, baseline, strict=True):
        now = dict(base)
        first: dict[int, float] = {}
        for line in worker_lines:
            for v, h in line.get("h", {}).items():
                now[int(v)] = h
            for v in targets:
                if v not in first and now.get(v) != base.get(v):
                    first[v] = line["t"]
            max_wait = max(max_wait, line["d"])
            interrupted |= line["s"] == "interrupted"
            channel_down |= line.get("c") not in ("open", None)
            errors += 1 if "e" in line else 0
        if targets:
            served.append(max(first.values()) - since if len(first) == len(targets) else None)
    every = None if None in served or not served else max(s for s in served if s is not None)
    return Readers(every, max_wait, interrupted, errors, channel_down, len(targets))


# -- the events ----------------------------------------------------------------------------


@dataclass
class Measure:
    requests: int
    later: int = 0
    upgrades: int = 0
    breakdown: dict[str, int] = field(default_factory=dict)
    readers: Readers | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.edits = 0

    def _count(self, proxy: CountingProxy, start: float, window: float) -> Measure:
        """Requests in [start, start + window), and those after it until the proxy is quiet."""
        end = start + window
        time.sleep(max(0.0, end - time.monotonic()))
        proxy.wait_quiet(QUIET)
        inside = proxy.between(start, end)
        after = proxy.between(end)
        return Measure(
            requests=proxy.http(inside),
            later=proxy.http(after),
            upgrades=proxy.upgrades(inside) + proxy.upgrades(after),
            breakdown=proxy.summary([*inside, *after]),
        )

    def _edit_prompt(self, admin: httpx.Client, prompt_id: int) -> None:
        self.edits += 1
        r = admin.patch(
            f"/items/prompts/{prompt_id}",
            params={"fields": "id"},
            json={"text": f"Edited ({self.edits}) at {time.time():.3f}."},
        )
        r.raise_for_status()

    def edit_event(
        self,
        proxy: CountingProxy,
        pool: WorkerPool,
        admin: httpx.Client,
        prompts: list[int],
        targets: Iterable[int],
        spacing: float = 0.2,
    ) -> Measure:
        """PATCH each prompt in turn, ``spacing`` apart; readers watch ``targets``, the
        versions whose content the edits change."""
        targets = set(targets)
        baseline = pool.watch(targets)
        proxy.wait_quiet(QUIET)
        mark = pool.mark()
        start = time.monotonic()
        returned = start
        for i, prompt_id in enumerate(prompts):
            if i:
                time.sleep(max(0.0, start + i * spacing - time.monotonic()))
            self._edit_prompt(admin, prompt_id)
            returned = time.monotonic()
        window = self.args.window + (returned - start)
        measure = self._count(proxy, start, window)
        measure.readers = _readers(pool.lines_since(mark), baseline, targets, returned)
        pool.trim()
        return measure

    def idle(self, proxy: CountingProxy, pool: WorkerPool, versions: int) -> Measure:
        pool.watch({1, versions})
        proxy.wait_quiet(QUIET)
        start = time.monotonic()
        end = start + self.args.idle
        time.sleep(self.args.idle)
        inside = proxy.between(start, end)
        pool.trim()
        return Measure(proxy.http(inside), breakdown=proxy.summary(inside))

    def nested_create(
        self, proxy: CountingProxy, pool: WorkerPool, admin: httpx.Client, seeded: Seeded
    ) -> Measure:
        baseline = pool.watch({1, seeded.versions})
        proxy.wait_quiet(QUIET)
        mark = pool.mark()
        self.edits += 1
        number = seeded.versions + 1000 + self.edits  # a draft: no reader may ever see it
        start = time.monotonic()
        r = admin.post(
            "/items/prompt_set_versions",
            params={"fields": "id"},
            json=version_payload(number, seeded.shared_sequence_id, status="draft"),
        )
        r.raise_for_status()
        measure = self._count(proxy, start, self.args.window)
        measure.readers = _readers(pool.lines_since(mark), baseline, [], start)
        pool.trim()
        return measure

    def restart(
        self, proxy: CountingProxy, pool: WorkerPool, server: DirectusServer, versions: int
    ) -> Measure:
        baseline = pool.watch({1, versions})
        proxy.wait_quiet(QUIET)
        mark = pool.mark()
        refused = proxy.refused_connections
        down = time.monotonic()
        server.restart()  # killed, then started on the same port and SQLite file; answers
        up = time.monotonic()
        measure = self._count(proxy, up, self.args.restart_window)
        outage = proxy.between(down, up)
        measure.extra = {
            "down_s": up - down,
            "during_outage": proxy.http(outage),
            "outage_upgrades": proxy.upgrades(outage),
            "refused_connections": proxy.refused_connections - refused,
        }
        lines = pool.lines_since(mark)
        measure.readers = _readers(lines, baseline, [], up)
        reopened = []
        for worker_lines in lines:
            after = [ln["t"] for ln in worker_lines if ln["t"] >= up and ln.get("c") == "open"]
            reopened.append(after[0] - up if after else None)
        measure.extra["channel_open_again_s"] = (
            None if None in reopened else max(r for r in reopened if r is not None)
        )
        pool.trim()
        return measure

    # -- once per V, one process -----------------------------------------------------------

    def cli(self, proxy: CountingProxy, env: dict[str, str], *args: str) -> tuple[Measure, str]:
        proxy.wait_quiet(0.5)
        command = [str(Path(sys.executable).with_name("storybench-prompts")), *args]
        start = time.monotonic()
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=Path(env["STORYBENCH_PROMPTS_MIRROR_DIR"]).parent,  # no stray .env is read
        )
        end = time.monotonic() + 0.5
        time.sleep(0.5)
        seen = proxy.between(start, end)
        if done.returncode != 0:
            print(f"  ! {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
        measure = Measure(proxy.http(seen), upgrades=proxy.upgrades(seen))
        measure.breakdown = proxy.summary(seen)
        measure.extra = {"seconds": end - 0.5 - start, "exit": done.returncode}
        return measure, done.stdout


def _cli_env(url: str, token: str, mirror: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "STORYBENCH_PROMPTS_", "MONGODB_"))
    }
    env.update(
        {
            "DIRECTUS_URL": url,
            "DIRECTUS_TOKEN": token,
            "STORYBENCH_PROMPTS_MIRROR_DIR": str(mirror),
        }
    )
    return env


# -- the table -----------------------------------------------------------------------------


def _s(seconds: float | None, window: float) -> str:
    return f"not all, > {window:g} s" if seconds is None else f"{seconds:.2f} s"


def _n(m: Measure) -> str:
    return f"{m.requests}" + (f" (+{m.later} later)" if m.later else "")


def _ok(flag: bool) -> str:
    return "met" if flag else "NOT met"


def table(v: int, w: int, r: dict[str, Any], args: argparse.Namespace) -> str:
    e = int(r["evaluation_versions"])
    rows: list[tuple[str, str, str, str, str]] = []

    def row(event: str, measured: str, formula: str = "", goal: str = "", met: str = "") -> None:
        rows.append((event, measured, formula, goal, met))

    def edit_rows(label: str, m: Measure, formula: str, req_goal: int, served_goal: float) -> None:
        rd = m.readers
        assert rd is not None
        row(
            f"{label}: requests in {args.window:g} s",
            _n(m),
            formula,
            f"<= {req_goal}",
            _ok(m.requests + m.later <= req_goal),
        )
        served = rd.served_after
        row(
            "  every worker serves it",
            _s(served, args.window),
            "",
            f"<= {served_goal:g} s",
            _ok(served is not None and served <= served_goal),
        )
        row(
            "  max reader wait",
            f"{rd.max_wait * 1000:.0f} ms",
            "",
            "<= 200 ms",
            _ok(rd.max_wait <= 0.2),
        )
        row(
            "  any worker interrupted",
            "yes" if rd.interrupted else "no",
            "",
            "no",
            _ok(not rd.interrupted),
        )

    def readers_row(rd: Readers | None, label: str = "  max reader wait / any interrupted") -> None:
        assert rd is not None
        row(label, f"{rd.max_wait * 1000:.0f} ms / {'yes' if rd.interrupted else 'no'}")

    if "idle" in r:
        idle = r["idle"]
        row(f"idle, {args.idle:g} s", str(idle.requests), "0", "0", _ok(idle.requests == 0))
    if "edit_one" in r:
        edit_rows("one prompt of one version edited", r["edit_one"], f"WxV = {w * v}", 2 * w, 1.0)
    if "edit_shared" in r:
        edit_rows(
            "one prompt of the shared sequence edited",
            r["edit_shared"],
            f"WxV = {w * v}",
            4 * w,
            2.0,
        )
    if "nested_create" in r:
        nc = r["nested_create"]
        row(
            f"nested create of a draft version: requests in {args.window:g} s",
            _n(nc),
            f"~2xWxV = {2 * w * v}",
        )
        readers_row(nc.readers)
    if "ten_edits" in r:
        ten = r["ten_edits"]
        rd = ten.readers
        assert rd is not None
        row(
            f"10 edits of 10 versions, 0.2 s apart: requests in {args.window:g} s from the first",
            _n(ten),
            f"WxV each, up to {10 * w * v}",
            f"<= {6 * w}",
            _ok(ten.requests + ten.later <= 6 * w),
        )
        row(
            "  all served, from the last edit",
            _s(rd.served_after, args.window),
            "",
            "<= 3 s",
            _ok(rd.served_after is not None and rd.served_after <= 3.0),
        )
        readers_row(rd)
    if "restart" in r:
        rs = r["restart"]
        row(
            f"Directus restarted: requests in the {args.restart_window:g} s after it answers",
            _n(rs),
            f"WxV = {w * v}",
            f"<= {3 * w}",
            _ok(rs.requests + rs.later <= 3 * w),
        )
        row(
            "  while it was down",
            f"{rs.extra['during_outage']} requests in {rs.extra['down_s']:.1f} s "
            f"({rs.extra['refused_connections']} connections not passed on)",
        )
        reopen = rs.extra["channel_open_again_s"]
        row("  channel open again in every worker", _s(reopen, args.restart_window))
        readers_row(rs.readers)
    if "sync" in r:
        sync = r["sync"]
        row(
            "`sync --all`, nothing changed (both kinds), one process",
            f"{sync.requests}" + (f" + {sync.upgrades} WS" if sync.upgrades else ""),
            f"V+E+2 = {v + e + 2}",
            "<= 8",
            _ok(sync.requests <= 8),
        )
    for key, label in (("cold_get_1", "get 1"), ("cold_get_latest", "get latest")):
        if key in r:
            cold = r[key]
            row(
                f"cold `storybench-prompts {label}`, realtime on",
                f"{cold.requests} HTTP + {cold.upgrades} WS",
                "2",
                "1 request",
                _ok(cold.requests <= 1),
            )
    head = ("event", "measured", "today's formula", f"goal (for W={w})" if w else "goal", "")
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(5)]
    workers = f", W = {w} workers" if w else ""
    out = [f"V = {v} versions{workers} (E = {e} evaluation versions)"]
    for line in [head, tuple("-" * n for n in widths), *rows]:
        out.append("| " + " | ".join(c.ljust(n) for c, n in zip(line, widths, strict=True)) + " |")
    return "\n".join(out)


def breakdowns(r: dict[str, Any]) -> str:
    out = []
    for key, m in r.items():
        if isinstance(m, Measure) and m.breakdown:
            out.append(f"  {key}: {json.dumps(m.breakdown)}")
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------


def _run_v(args: argparse.Namespace, v: int) -> dict[int, dict[str, Any]]:
    bench = Bench(args)
    results: dict[int, dict[str, Any]] = {}
    server = DirectusServer.start_from(template_db(), realtime=True)
    tmp = Path(tempfile.mkdtemp(prefix="sbp-scale-"))
    try:
        seeded = seed(server, v)
        print(f"seeded {v} versions (+ evaluations) in {seeded.seconds:.1f} s", flush=True)
        with (
            CountingProxy(server.port) as proxy,
            httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=60,
            ) as admin,
        ):
            once: dict[str, Any] = {"evaluation_versions": seeded.evaluation_versions}
            if "sync" in args.events:
                env = _cli_env(proxy.url, server.readonly_token, tmp / "sync-mirror")
                first, _ = bench.cli(proxy, env, "sync", "--all")
                once["sync_first"] = first
                once["sync"], _ = bench.cli(proxy, env, "sync", "--all")
                print(
                    f"sync --all: first {first.requests} requests, second {once['sync'].requests}",
                    flush=True,
                )
            if "cold_get" in args.events:
                for key, which in (("cold_get_1", "1"), ("cold_get_latest", "latest")):
                    cold_env = _cli_env(proxy.url, server.readonly_token, tmp / f"{key}-mirror")
                    once[key], _ = bench.cli(proxy, cold_env, "get", which, "--json")
                    print(
                        f"cold get {which}: {once[key].requests} HTTP + {once[key].upgrades} WS",
                        flush=True,
                    )
            if not set(args.events) & set(WORKER_EVENTS):
                print(table(v, 0, once, args))
                results[0] = once
            for w in args.workers if set(args.events) & set(WORKER_EVENTS) else []:
                results[w] = _run_w(bench, server, proxy, admin, seeded, w, tmp) | once
                print()
                print(table(v, w, results[w], args))
                print("requests by method and path:")
                print(breakdowns(results[w]), flush=True)
                print()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def _run_w(
    bench: Bench,
    server: DirectusServer,
    proxy: CountingProxy,
    admin: httpx.Client,
    seeded: Seeded,
    w: int,
    tmp: Path,
) -> dict[str, Any]:
    v = seeded.versions
    run_dir = tmp / f"w{w}"
    run_dir.mkdir()
    proxy.wait_quiet(QUIET)
    started = time.monotonic()
    pool = WorkerPool(proxy.url, server.readonly_token, v, w, run_dir)
    out: dict[str, Any] = {}
    try:
        ready = pool.wait_ready()
        proxy.wait_quiet(QUIET)
        warm = proxy.between(started)
        print(
            f"W={w}: workers ready (channel open in <= "
            f"{max(r['channel_s'] for r in ready):.1f} s, warm in <= "
            f"{max(r['warm_s'] for r in ready):.1f} s; {proxy.http(warm)} requests, "
            f"{proxy.upgrades(warm)} WS)",
            flush=True,
        )
        steps: list[tuple[str, Callable[[], Measure]]] = [
            ("idle", lambda: bench.idle(proxy, pool, v)),
            (
                "edit_one",
                lambda: bench.edit_event(
                    proxy, pool, admin, [seeded.own_prompt_ids[v // 2][0]], [v // 2]
                ),
            ),
            (
                "edit_shared",
                lambda: bench.edit_event(
                    proxy, pool, admin, [seeded.shared_prompt_ids[0]], range(1, v + 1)
                ),
            ),
            ("nested_create", lambda: bench.nested_create(proxy, pool, admin, seeded)),
            (
                "ten_edits",
                lambda: bench.edit_event(
                    proxy,
                    pool,
                    admin,
                    [seeded.own_prompt_ids[n][1] for n in _spread(v, 10)],
                    _spread(v, 10),
                ),
            ),
            ("restart", lambda: bench.restart(proxy, pool, server, v)),
        ]
        for name, step in steps:
            if name not in bench.args.events:
                continue
            logs, refused = pool.log_marks(), proxy.refused_connections
            out[name] = step()
            m = out[name]
            m.extra["proxy_refused_connections"] = proxy.refused_connections - refused
            logged = pool.log_since(logs)
            m.extra["worker_log"] = _distinct(logged)
            rd = m.readers
            if rd is not None and any(_outage(line) for line in logged):
                rd.interrupted = True
            served = ""
            if rd is not None:
                if rd.targets:
                    served += f", served in {_s(rd.served_after, bench.args.window)}"
                served += f", max wait {rd.max_wait * 1000:.0f} ms"
                served += ", interrupted" if rd.interrupted else ""
            if m.extra["proxy_refused_connections"]:
                served += (
                    f"; proxy could not reach Directus {m.extra['proxy_refused_connections']}x"
                )
            print(f"  {name}: {_n(m)} requests{served}", flush=True)
            for line in m.extra["worker_log"]:
                print(f"    worker log: {line}", flush=True)
    finally:
        pool.stop()
    return out


def _distinct(lines: list[str], keep: int = 6) -> list[str]:
    """Warnings and errors the workers logged, each kind once with its count (hashes, ids and
    timings left out). Drift notes, which every edit causes, are counted apart."""
    kinds: dict[str, int] = {}
    drifts = 0
    for line in lines:
        if not line.startswith(("WARNING", "ERROR", "CRITICAL")):
            continue
        if "under the same version number" in line:
            drifts += 1
            continue
        kind = re.sub(r"\b[0-9a-f]{16}\b", "H", line)
        kind = re.sub(r"\d+(\.\d+)?", "N", kind)[:300]
        kinds[kind] = kinds.get(kind, 0) + 1
    out = [f"{n} x {k}" for k, n in list(kinds.items())[:keep]]
    return out + (
        [f"{drifts} drift notes (content changed under one version number)"] if drifts else []
    )


def _outage(line: str) -> bool:
    """A worker's log line that says Directus was taken for failing (status interrupted)."""
    return line.startswith(("WARNING", "ERROR")) and (
        "unavailable" in line or "interrupted" in line
    )


def _spread(v: int, n: int) -> list[int]:
    step = max(1, v // n)
    return [1 + i * step for i in range(n)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--versions", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds (30 in the issue)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds counted after an edit")
    parser.add_argument("--restart-window", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--events",
        nargs="+",
        choices=EVENTS,
        default=list(EVENTS),
        metavar="EVENT",
        help=f"run only these (of: {' '.join(EVENTS)})",
    )
    args = parser.parse_args(argv)
    everything: dict[str, Any] = {}
    for v in args.versions:
        for w, r in _run_v(args, v).items():
            everything[f"V={v},W={w}"] = r
    if args.json:
        args.json.write_text(json.dumps(everything, default=_jsonable, indent=2))
    return 0


def _jsonable(o: Any) -> Any:
    if isinstance(o, (Measure, Readers)):
        return dict(o.__dict__)
    if isinstance(o, Request):
        return o.key
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
