"""`watch` keeps a mirror in step with Directus; `get --hash` returns what a run recorded."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from queue import Empty, Queue

import anyio
import httpx
import pytest

from storybench_prompts import DirectusConnectionError, InMemoryMirror
from storybench_prompts.content.kinds import PROMPT_SETS
from storybench_prompts.ops.watch import MirrorWatcher, WatchedKind
from tests.factories import flat_set
from tests.fakes import FakeClock, ScriptedOrigin
from tests.test_realtime_cache import _start, prompt_id_of

pytestmark = pytest.mark.timeout(180)


@pytest.mark.anyio
async def test_the_watcher_reconciles_at_start_on_change_and_on_the_interval():
    origin = ScriptedOrigin({1: flat_set(1), 2: flat_set(2)})
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    clock = FakeClock()
    lines: list[str] = []
    watcher = MirrorWatcher(
        [WatchedKind(PROMPT_SETS, origin, mirror)],
        report=lines.append,
        interval=60,
        sleep=clock.sleep,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        await anyio.wait_all_tasks_blocked()
        assert lines == [
            f"prompts v1: new {flat_set(1).config_hash}",
            f"prompts v2: new {flat_set(2).config_hash}",
        ]
        assert mirror.active_version == 2

        origin.sets[2] = flat_set(2, text_suffix=" edited")
        watcher.changed("prompts")
        await anyio.wait_all_tasks_blocked()
        assert lines[-1].startswith("prompts v2: updated")
        assert "content changed under the same version number" in lines[-1]

        watcher.changed("some_other_collection")  # not ours: nothing to do
        await anyio.wait_all_tasks_blocked()
        assert watcher.reconciles == 2

        del origin.sets[2]
        clock.advance(60)  # the interval's full reconcile notices the withdrawal
        await anyio.wait_all_tasks_blocked()
        assert lines[-1] == "prompts v2: withdrawn (no longer published; kept as a record)"
        assert mirror.active_version == 1

        origin.error = DirectusConnectionError("refused")
        watcher.changed(None)
        await anyio.wait_all_tasks_blocked()
        assert lines[-1].startswith("prompts: reconcile failed, will retry")
        tg.cancel_scope.cancel()


def _reader(stream, queue: Queue) -> None:
    for line in stream:
        queue.put(line.rstrip("\n"))


def wait_for_line(queue: Queue, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = queue.get(timeout=0.1)
        except Empty:
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r} in {seen}")


@pytest.fixture
def realtime_directus(directus_template) -> Iterator:
    yield from _start(directus_template, realtime=True)


@pytest.mark.directus
def test_watch_applies_changes_stops_cleanly_and_old_hashes_stay_readable(
    realtime_directus, tmp_path
):
    server = realtime_directus
    mirror_dir = tmp_path / "mirror"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_"))
    }
    env |= {
        "DIRECTUS_URL": server.url,
        "DIRECTUS_TOKEN": server.readonly_token,
        "STORYBENCH_PROMPTS_MIRROR_DIR": str(mirror_dir),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "storybench_prompts", "watch", "--interval", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: Queue = Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    try:
        first = wait_for_line(lines, "prompts v3: new")
        old_hash = first.split()[-1]
        wait_for_line(lines, "evaluations v3: new")

        server.update_item("prompts", prompt_id_of(server, 3), {"text": "Changed by an editor."})
        changed = wait_for_line(lines, "prompts v3: updated")
        assert old_hash in changed

        # Stop it while a change is being applied.
        server.update_item("prompts", prompt_id_of(server, 2), {"text": "Changed again."})
        time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    assert not [p for p in mirror_dir.rglob("*") if p.name.endswith(".tmp")]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "storybench_prompts", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    for version in (1, 2, 3):  # every snapshot whole and valid
        assert cli("get", str(version), "--source", "mirror", "--json").returncode == 0
    old = json.loads(cli("get", "--hash", old_hash, "--json").stdout)
    assert old["config_hash"] == old_hash
    assert old["version"] == 3
    texts = [p["text"] for prompts in old["sequences"].values() for p in prompts]
    assert "Changed by an editor." not in texts
    now = json.loads(cli("get", "3", "--json").stdout)
    assert now["config_hash"] != old_hash


@pytest.mark.directus
def test_watch_serves_its_metrics_on_127_0_0_1(realtime_directus, tmp_path):
    server = realtime_directus
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_", "OTEL_"))
    }
    env |= {
        "DIRECTUS_URL": server.url,
        "DIRECTUS_TOKEN": server.readonly_token,
        "STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "mirror"),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "storybench_prompts", "watch", "--metrics-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: Queue = Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    try:
        url = wait_for_line(lines, "metrics at http://127.0.0.1:").split()[-1]
        wait_for_line(lines, "evaluations v3: new")
        server.update_item("prompts", prompt_id_of(server, 3), {"text": "Changed for metrics."})
        wait_for_line(lines, "prompts v3: updated")
        page = httpx.get(url, timeout=10).text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("storybench_prompts_")
    }
    assert any(k.startswith("storybench_prompts_origin_up") and v == 1 for k, v in samples.items())
    attempts = [k for k in samples if k.startswith("storybench_prompts_origin_attempts_total")]
    assert attempts
    assert all('outcome="ok"' in k for k in attempts)
    changes = [
        v
        for k, v in samples.items()
        if k.startswith("storybench_prompts_content_changes_total") and 'via="sync"' in k
    ]
    assert changes == [1.0]
    writes = {
        k: v for k, v in samples.items() if k.startswith("storybench_prompts_mirror_writes_total")
    }
    assert sum(v for k, v in writes.items() if 'outcome="new"' in k) == 6  # 3 + 3 versions
    assert sum(v for k, v in writes.items() if 'outcome="updated"' in k) == 1


@pytest.mark.directus
def test_watch_on_a_busy_metrics_port_exits_2_naming_it(directus, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "storybench_prompts", "watch", "--metrics-port", str(port)],
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(tmp_path),
                "DIRECTUS_URL": directus.url,
                "DIRECTUS_TOKEN": directus.readonly_token,
                "STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "mirror"),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"metrics port {port} is already in use" in result.stderr
