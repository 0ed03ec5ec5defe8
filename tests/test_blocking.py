"""The blocking API: one background loop, the async repository's answers and errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

import storybench_prompts
from storybench_prompts import (
    EVALUATION_SETS,
    PROMPT_SETS,
    BlockingRepository,
    CachingRepository,
    ContentChangedError,
    InMemoryMirror,
    PromptSetNotFoundError,
    Settings,
    blocking,
)
from tests.factories import flat_evaluation_set
from tests.fakes import ScriptedOrigin

ROOT = Path(__file__).resolve().parent.parent


class ThreadRecordingOrigin(ScriptedOrigin):
    """A scripted origin that notes which thread answered each call."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    async def _answer(self, key):
        self.threads.add(threading.current_thread().name)
        return await super()._answer(key)


class SlowMirror(InMemoryMirror):
    """An in-memory mirror whose saves take a while, so they are still running at close."""

    async def save(self, content):
        await anyio.sleep(1.0)
        return await super().save(content)


def factory_over(origin, mirror=None, **kwargs):
    return lambda: CachingRepository(origin, mirror, **kwargs)


@pytest.fixture
def origin() -> ThreadRecordingOrigin:
    return ThreadRecordingOrigin()


@pytest.fixture
def prompts(origin):
    with blocking(factory=factory_over(origin, InMemoryMirror(kind=PROMPT_SETS))) as repository:
        yield repository


def test_answers_are_what_the_origin_has(prompts, origin):
    assert isinstance(prompts, BlockingRepository)
    latest = prompts.latest()
    assert latest.version == 3
    assert latest.config_hash == origin.sets[3].config_hash
    assert prompts.get(2).config_hash == origin.sets[2].config_hash
    assert prompts.get(3, expect_hash=latest.config_hash).version == 3
    assert [info.version for info in prompts.versions()] == [1, 2, 3]
    assert prompts.get_by_hash(latest.config_hash).version == 3
    assert prompts.latest().provenance.source == "cache"  # one cache lives between calls
    assert prompts.stats().hits >= 1
    assert prompts.status().state == "valid"
    assert prompts.describe()["origin"] == "directus"
    assert origin.threads == {"storybench-prompts-blocking"}


def test_errors_keep_their_types_and_tracebacks(prompts):
    with pytest.raises(PromptSetNotFoundError) as raised:
        prompts.get(99)
    assert raised.value.version == 99
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "test_errors_keep_their_types_and_tracebacks" in frames  # the caller's frame
    assert "_await_fetch" in frames  # and the library's, from the loop thread
    with pytest.raises(ContentChangedError) as changed:
        prompts.get(3, expect_hash="0" * 16)
    assert changed.value.expected == "0" * 16
    with pytest.raises(PromptSetNotFoundError):
        prompts.get_by_hash("f" * 16)


def test_warm_and_evaluations():
    evaluation_origin = ScriptedOrigin({v: flat_evaluation_set(v) for v in (1, 2)})
    mirror = InMemoryMirror(kind=PROMPT_SETS)

    def build():
        evaluations = CachingRepository(evaluation_origin, kind=EVALUATION_SETS)
        return CachingRepository(ScriptedOrigin(), mirror, evaluations=evaluations)

    with blocking(factory=build) as prompts:
        assert [r.version for r in prompts.warm()] == [1, 2, 3]
        assert prompts.evaluations.latest().version == 2
        assert prompts.evaluations.get(1).criteria == flat_evaluation_set(1).criteria
        assert [i.version for i in prompts.evaluations.versions()] == [1, 2]
        assert prompts.evaluations is prompts.evaluations
    assert mirror.saves == 3
    with pytest.raises(RuntimeError, match="closed"):
        prompts.evaluations.latest()  # one loop served both: closed together


def test_evaluations_without_a_repository_for_them_is_a_clear_error(prompts):
    with pytest.raises(RuntimeError, match="no evaluations repository"):
        prompts.evaluations.latest()
    assert prompts.latest().version == 3  # the loop is unharmed


def test_calls_from_eight_threads_at_once(prompts, origin):
    barrier = threading.Barrier(8)

    def use(i: int) -> tuple[int, int, int]:
        barrier.wait(timeout=10)
        return prompts.latest().version, prompts.get(i % 3 + 1).version, len(prompts.versions())

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(use, range(8)))
    assert results == [(3, i % 3 + 1, 3) for i in range(8)]
    assert origin.threads == {"storybench-prompts-blocking"}  # all ran on the one loop
    assert origin.calls.count("latest") == 1  # and shared its cache


def test_works_inside_a_running_event_loop(prompts):
    async def notebook_cell() -> int:
        asyncio.get_running_loop()  # as in Jupyter: a loop runs in this thread
        return prompts.latest().version

    assert asyncio.run(notebook_cell()) == 3


def test_the_repository_is_built_and_entered_on_the_background_loop(origin):
    seen = {}

    def build():
        seen["thread"] = threading.current_thread().name
        seen["loop"] = asyncio.get_running_loop()
        return CachingRepository(origin)

    prompts = blocking(factory=build)
    assert seen == {}  # nothing is built until first needed
    assert prompts.latest().version == 3
    assert seen["thread"] == "storybench-prompts-blocking"
    prompts.close()
    assert seen["loop"].is_closed()


def test_a_factory_that_fails_raises_its_error_and_the_next_call_tries_again(origin):
    attempts = []

    def build():
        attempts.append(1)
        if len(attempts) == 1:
            raise storybench_prompts.ConfigurationError("DIRECTUS_URL is not set")
        return CachingRepository(origin)

    prompts = blocking(factory=build)
    with pytest.raises(storybench_prompts.ConfigurationError, match="DIRECTUS_URL"):
        prompts.latest()
    assert prompts.latest().version == 3
    prompts.close()


def test_close_is_idempotent_and_calls_after_it_raise(origin):
    before = {t.name for t in threading.enumerate()}
    prompts = blocking(factory=factory_over(origin))
    assert prompts.latest().version == 3
    prompts.close()
    prompts.close()
    assert origin.closed
    assert {t.name for t in threading.enumerate()} == before  # the thread was joined
    with pytest.raises(RuntimeError, match="closed"):
        prompts.latest()
    with pytest.raises(RuntimeError, match="closed"), prompts:
        pass
    never_used = blocking(factory=factory_over(origin))
    never_used.close()
    with pytest.raises(RuntimeError, match="closed"):
        never_used.get(1)


def test_settings_and_a_factory_are_exclusive(origin):
    with pytest.raises(TypeError):
        blocking(Settings(_env_file=None), factory=factory_over(origin))


def test_mirror_writes_in_progress_land_on_close(origin):
    mirror = SlowMirror(kind=PROMPT_SETS)
    with blocking(factory=factory_over(origin, mirror)) as prompts:
        served = prompts.latest()
        assert mirror.saves == 0  # the write-through is still sleeping
    assert mirror.saves == 1
    assert anyio.run(mirror.stored_hash, 3) == served.config_hash


def test_both_spellings_give_the_same_function(origin):
    from storybench_prompts import blocking as imported

    assert imported is storybench_prompts.blocking
    repository = imported(factory=factory_over(origin))
    assert repository.get(1).version == 1
    repository.close()


def run_script(source: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_ctrl_c_cancels_the_call_and_raises_keyboard_interrupt():
    result = run_script(
        """
        import asyncio, signal, threading
        import storybench_prompts

        started, cancelled = threading.Event(), threading.Event()

        class Hanging:
            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                pass

            async def latest(self):
                started.set()
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise

        def interrupt():
            started.wait(10)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

        prompts = storybench_prompts.blocking(factory=Hanging)
        threading.Thread(target=interrupt, daemon=True).start()
        try:
            prompts.latest()
        except KeyboardInterrupt:
            print("interrupted")
        print("cancelled" if cancelled.wait(10) else "still running")
        prompts.close()
        print("closed")
        """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["interrupted", "cancelled", "closed"]


def test_an_open_repository_is_closed_at_exit_and_its_mirror_write_lands(tmp_path):
    started = time.monotonic()
    result = run_script(
        """
        import sys
        import anyio
        import storybench_prompts
        from storybench_prompts import PROMPT_SETS, CachingRepository, FileMirror
        from tests.fakes import ScriptedOrigin

        class SlowFileMirror(FileMirror):
            async def save(self, content):
                await anyio.sleep(0.5)
                return await super().save(content)

        prompts = storybench_prompts.blocking(
            factory=lambda: CachingRepository(ScriptedOrigin(), SlowFileMirror(sys.argv[1], kind=PROMPT_SETS))
        )
        print(prompts.latest().version)
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
    assert time.monotonic() - started < 30
    assert (tmp_path / "prompt-set-v3.json").is_file()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_builds_its_own_loop(origin, prompts):
    assert prompts.latest().version == 3  # the parent's loop thread is running
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            assert prompts.latest().version == 3  # inherited: built afresh, no dead thread
            with blocking(factory=factory_over(ScriptedOrigin())) as fresh:
                assert fresh.get(2).version == 2
            prompts.close()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(status) == 0
    assert prompts.get(1).version == 1  # the parent's is unharmed


@pytest.mark.directus
def test_against_the_local_directus(directus, tmp_path):
    settings = Settings(
        _env_file=None,
        directus_url=directus.url,
        directus_token=directus.readonly_token,
        mongodb_uri=None,
        mirror_dir=tmp_path,
        realtime="off",
    )
    with blocking(settings) as prompts:
        latest = prompts.latest()
        assert latest.version == 3
        assert latest.provenance.source == "directus"
        assert prompts.evaluations.latest().version >= 1
    assert (tmp_path / "prompt-set-v3.json").is_file()  # written through, landed on close
