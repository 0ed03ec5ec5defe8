"""Fixtures for the drop-in client: a clean environment, a counted transport, servers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from devserver.directus import DirectusServer

# Settings the drop-in reads; the test's own values replace whatever the shell had.
_READ = {"DIRECTUS_URL", "DIRECTUS_TOKEN", "MONGODB_URI"}
_KEEP = {"STORYBENCH_PROMPTS_DEV_CACHE"}  # where the local servers are installed


@pytest.fixture(autouse=True)
def mirror_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty environment for the library, a file mirror of the test's own, no ``.env``."""
    for name in list(os.environ):
        if name in _READ or (name.startswith("STORYBENCH_PROMPTS_") and name not in _KEEP):
            monkeypatch.delenv(name)
    directory = tmp_path / "mirror"
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(directory))
    monkeypatch.chdir(tmp_path)  # Settings reads ./.env
    return directory


def use_directus(monkeypatch: pytest.MonkeyPatch, server: DirectusServer) -> DirectusServer:
    """Point DIRECTUS_URL/DIRECTUS_TOKEN at a local server, as storybench's .env would."""
    monkeypatch.setenv("DIRECTUS_URL", server.url)
    monkeypatch.setenv("DIRECTUS_TOKEN", server.readonly_token)
    return server


@pytest.fixture
def directus_env(directus: DirectusServer, monkeypatch: pytest.MonkeyPatch) -> DirectusServer:
    """The shared seeded Directus, in the environment storybench's tests read."""
    return use_directus(monkeypatch, directus)


@pytest.fixture
def realtime_directus_env(
    directus_template: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DirectusServer]:
    """A seeded Directus of the test's own that serves WebSocket subscriptions."""
    from devserver.directus import DirectusServer as Server
    from devserver.sample_data import seed_all

    try:
        server = Server.start_from(directus_template, realtime=True)
    except Exception as exc:  # pragma: no cover - the shared fixtures skip the same way
        pytest.skip(f"local Directus with realtime unavailable: {exc}")
    try:
        seed_all(server)
        yield use_directus(monkeypatch, server)
    finally:
        server.stop()


@pytest.fixture
def own_directus_env(
    own_directus: DirectusServer, monkeypatch: pytest.MonkeyPatch
) -> DirectusServer:
    """A seeded Directus of the test's own (it may pause or kill it), in the environment."""
    return use_directus(monkeypatch, own_directus)


class SentRequests(list[httpx.Request]):
    """Every HTTP request that really left for a server (at httpx's network transport)."""

    def to(self, path: str) -> list[httpx.Request]:
        return [r for r in self if r.url.path == path]

    def items(self) -> list[httpx.Request]:
        return [r for r in self if r.url.path.startswith("/items/")]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> SentRequests:
    """Counts requests at ``httpx.AsyncHTTPTransport``, which every pooled client sends through."""
    log = SentRequests()
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def counting(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        log.append(request)
        return await original(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", counting)
    return log


async def background_work_done(timeout: float = 10.0) -> None:
    """Wait until the shared repositories have no background work left (mirror writes,
    refreshes), only their hosts.

    Tests that read the mirror afterwards, or count what reached it, need those writes done
    first; and a loop that closes while one is in flight makes the test depend on timing.
    """
    import storybench_prompts
    from storybench_prompts.compat.storybench.registry import _REGISTRY

    package = str(Path(storybench_prompts.__file__).parent)
    with anyio.fail_after(timeout):
        while True:
            hosts = {s.task for entries in _REGISTRY.values() for s in entries.values()}
            busy = [
                t
                for t in asyncio.all_tasks()
                if t not in hosts and not t.done() and _runs_code_of(t, package)
            ]
            if not busy:
                return
            await asyncio.sleep(0.01)


def _runs_code_of(task: asyncio.Task[Any], package: str) -> bool:
    """Whether the task runs the library's short-lived work (anyio wraps the coroutine it was
    given). The realtime channel runs as long as its repository: it is not work to wait for."""
    if task.get_name() == "realtime channel":
        return False
    if "storybench_prompts" in task.get_name() or task.get_name().startswith("single-flight"):
        return True
    coro: Any = task.get_coro()
    while coro is not None:
        code = getattr(coro, "cr_code", None)
        if code is not None and code.co_filename.startswith(package):
            return True
        coro = getattr(coro, "cr_await", None)
    return False


@pytest.fixture
async def settled() -> AsyncIterator[None]:
    """Lets the mirror writes of the test finish before its loop closes."""
    yield
    await background_work_done()
