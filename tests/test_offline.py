"""Offline: the mirror alone serves, with no Directus URL or token and no network attempt."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from storybench_prompts import (
    EVALUATION_SETS,
    PROMPT_SETS,
    ConfigurationError,
    DirectusClient,
    DirectusClientError,
    FileMirror,
    PromptSetNotFoundError,
    Settings,
    build_repository,
    build_source,
)
from storybench_prompts._compose import build_stack
from tests.factories import flat_evaluation_set, flat_set

pytestmark = pytest.mark.anyio


@pytest.fixture
async def snapshot(tmp_path):
    directory = tmp_path / "snapshot"
    for v in (1, 2):
        await FileMirror(directory, kind=PROMPT_SETS).save(flat_set(v))
        await FileMirror(directory, kind=EVALUATION_SETS).save(flat_evaluation_set(v))
    return directory


class CountingSocket:
    """A listening socket that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listening():
    counting = CountingSocket()
    yield counting
    counting.close()


def offline_settings(snapshot, **extra) -> Settings:
    return Settings(_env_file=None, offline=True, mirror_dir=snapshot, directus_url=None, **extra)


async def test_the_library_serves_the_snapshot_without_directus(snapshot):
    async with build_repository(offline_settings(snapshot)) as repo:
        latest = await repo.latest()
        assert (latest.version, latest.config_hash) == (2, flat_set(2).config_hash)
        assert latest.provenance.source == "mirror"
        assert (await repo.get(1)).config_hash == flat_set(1).config_hash
        assert [i.version for i in await repo.versions()] == [1, 2]
        assert (await repo.evaluations.latest()).version == 2
        assert (await repo.get_by_hash(flat_set(1).config_hash)).version == 1
        assert repo.channel_status() is None  # no realtime channel
        assert repo.describe()["origin"] == "offline"
        with pytest.raises(PromptSetNotFoundError) as missing:
            await repo.get(7)
        assert "has no prompt set version 7" in str(missing.value)
        assert "it holds prompt set versions 1, 2" in str(missing.value)
        assert str(snapshot) in str(missing.value)


async def test_an_empty_snapshot_says_so(tmp_path):
    async with build_repository(offline_settings(tmp_path / "empty")) as repo:
        with pytest.raises(PromptSetNotFoundError, match="holds no prompt set"):
            await repo.latest()


async def test_offline_ignores_a_directus_url_and_token_and_connects_nowhere(snapshot, listening):
    settings = Settings(
        _env_file=None,
        offline=True,
        mirror_dir=snapshot,
        directus_url=listening.url,
        directus_token="t",
        realtime="on",
    )
    stack = build_stack(settings)
    assert stack.source is None
    async with stack:
        assert (await stack.prompts.latest()).version == 2
        await asyncio.sleep(0.2)
    assert listening.accepted == 0
    with pytest.raises(ConfigurationError, match="offline"):
        build_source(settings)


async def test_the_drop_in_answers_offline_without_url_token_or_connection(
    snapshot, listening, monkeypatch
):
    for name in ("DIRECTUS_TOKEN", "MONGODB_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIRECTUS_URL", listening.url)
    monkeypatch.setenv("STORYBENCH_PROMPTS_OFFLINE", "true")
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(snapshot))
    client = DirectusClient()  # no token: offline needs none
    prompts = await client.fetch_prompts()
    assert prompts.version == 2
    assert prompts.config_hash == flat_set(2).config_hash
    assert (await client.fetch_prompts(1)).config_hash == flat_set(1).config_hash
    assert await client.fetch_prompts(9) is None  # not in the snapshot: as for Directus
    evaluation = await client.get_latest_published_evaluation_version()
    assert evaluation.version_number == 2
    assert await client.test_connection() is False
    with pytest.raises(DirectusClientError, match="offline"):
        await client._make_request("GET", "/server/ping")
    assert listening.accepted == 0


def test_the_drop_in_still_needs_a_url_when_online(monkeypatch):
    for name in ("DIRECTUS_URL", "DIRECTUS_TOKEN", "STORYBENCH_PROMPTS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DirectusClientError, match="URL not provided"):
        DirectusClient()


def test_the_settings_read_offline_and_lock_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STORYBENCH_PROMPTS_OFFLINE", "true")
    monkeypatch.setenv("STORYBENCH_PROMPTS_LOCK", str(tmp_path / "run.lock"))
    settings = Settings(_env_file=None)
    assert settings.offline is True
    assert settings.lock == tmp_path / "run.lock"
    assert settings.describe()["lock"] == str(tmp_path / "run.lock")
    monkeypatch.setenv("STORYBENCH_PROMPTS_OFFLINE", "maybe")
    with pytest.raises(Exception, match="STORYBENCH_PROMPTS_OFFLINE"):
        Settings(_env_file=None)
    monkeypatch.delenv("STORYBENCH_PROMPTS_OFFLINE")
    monkeypatch.delenv("STORYBENCH_PROMPTS_LOCK")
    assert (Settings(_env_file=None).offline, Settings(_env_file=None).lock) == (False, None)
