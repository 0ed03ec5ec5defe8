"""Freshness through Directus's realtime channel, end to end: a real Directus with realtime on,
the repository exactly as ``build_repository()`` composes it, edits made through the admin REST
API while it serves."""

import time
from collections.abc import Iterator

import anyio
import pytest

from devserver.directus import DirectusServer
from devserver.sample_data import seed_all
from storybench_prompts import PromptSetNotFoundError, Settings, build_repository
from tests.conftest import _serving

pytestmark = [pytest.mark.directus, pytest.mark.timeout(180)]


def _start(template, realtime: bool) -> Iterator[DirectusServer]:
    def start() -> DirectusServer:
        server = DirectusServer.start_from(
            template,
            realtime=realtime,
            env_overrides={"WEBSOCKETS_HEARTBEAT_PERIOD": "2"} if realtime else None,
        )
        return server

    with _serving("local Directus (realtime)", start) as server:
        seed_all(server)
        yield server


@pytest.fixture
def realtime_directus(directus_template) -> Iterator[DirectusServer]:
    yield from _start(directus_template, realtime=True)


def settings_for(server: DirectusServer, tmp_path, **extra) -> Settings:
    return Settings(
        directus_url=server.url,
        directus_token=server.readonly_token,
        mirror_dir=tmp_path,
        mongodb_uri=None,
        **extra,
    )


async def wait_open(repo) -> None:
    with anyio.fail_after(20):
        while (status := repo.channel_status()) is None or status.state != "open":
            await anyio.sleep(0.02)


async def served_within(check, seconds: float = 5.0) -> float:
    """Seconds until ``check()`` (async) is true; fails after ``seconds``."""
    started = time.monotonic()
    with anyio.fail_after(seconds):
        while not await check():
            await anyio.sleep(0.005)
    return time.monotonic() - started


def prompt_id_of(server: DirectusServer, version_number: int) -> int:
    with server.admin() as admin:
        rows = admin.get(
            "/items/prompt_set_versions",
            params={
                "filter[version_number][_eq]": str(version_number),
                "fields": "sequences_in_set.prompt_sequences_id.prompts_in_sequence.prompts_id.id",
            },
        ).json()["data"]
    sequence = rows[0]["sequences_in_set"][0]["prompt_sequences_id"]
    return int(sequence["prompts_in_sequence"][0]["prompts_id"]["id"])


def version_id_of(server: DirectusServer, version_number: int) -> int:
    with server.admin() as admin:
        rows = admin.get(
            "/items/prompt_set_versions",
            params={"filter[version_number][_eq]": str(version_number), "fields": "id"},
        ).json()["data"]
    return int(rows[0]["id"])


@pytest.mark.anyio
async def test_edits_publishing_and_unpublishing_reach_a_running_repository(
    realtime_directus, tmp_path
):
    server = realtime_directus
    # TTLs far longer than the test: only the channel can make the new content appear.
    settings = settings_for(server, tmp_path, latest_ttl=3600, pinned_ttl=3600)
    async with build_repository(settings) as repo:
        await wait_open(repo)
        before = await repo.latest()
        assert before.version == 3
        requests_before = repo.stats().origin_requests
        for _ in range(20):
            await repo.latest()
        assert repo.stats().origin_requests == requests_before  # nothing while idle

        # A prompt's text is edited in place.
        prompt_id = prompt_id_of(server, 3)
        server.update_item("prompts", prompt_id, {"text": "Edited while a run was starting."})

        async def has_new_text() -> bool:
            texts = {p.text for ps in (await repo.latest()).sequences.values() for p in ps}
            return "Edited while a run was starting." in texts

        took = await served_within(has_new_text)
        print(f"edit served {took * 1000:.0f} ms after the PATCH returned")
        assert took < 1.0
        edited = await repo.latest()
        assert edited.config_hash != before.config_hash
        assert [d.version for d in repo.drifts()] == [3]  # same number, new content
        assert repo.stats().drifts == 1

        # Publishing v4 moves latest; unpublishing it withdraws it again.
        server.update_item("prompt_set_versions", version_id_of(server, 4), {"status": "published"})

        async def latest_is(n: int) -> bool:
            return (await repo.latest()).version == n

        took = await served_within(lambda: latest_is(4))
        print(f"publish served {took * 1000:.0f} ms after the PATCH returned")
        assert took < 1.0
        server.update_item("prompt_set_versions", version_id_of(server, 4), {"status": "draft"})
        took = await served_within(lambda: latest_is(3))
        assert took < 1.0
        with pytest.raises(PromptSetNotFoundError):
            await repo.get(4)

        # The evaluation criteria follow the same channel.
        criteria = await repo.evaluations.latest()
        assert criteria.version == 3

        # Directus restarts: the channel reconnects and everything is revalidated once.
        server.restart()
        with anyio.fail_after(30):
            while (status := repo.channel_status()).reconnects < 1 or status.state != "open":
                await anyio.sleep(0.05)
        assert (await repo.latest()).version == 3
        assert repo.describe()["realtime"]["reconnects"] >= 1


@pytest.mark.anyio
async def test_without_realtime_on_the_server_ttls_rule_and_nothing_fails(directus, tmp_path):
    settings = settings_for(directus, tmp_path, latest_ttl=0.2)
    async with build_repository(settings) as repo:
        first = await repo.latest()
        with anyio.fail_after(20):
            while (status := repo.channel_status()) is None or status.state != "unavailable":
                await anyio.sleep(0.05)
        assert repo.describe()["realtime"]["current"] is False
        await anyio.sleep(0.3)
        requests = repo.stats().origin_requests
        again = await repo.latest()  # expired: served stale while a refresh runs
        assert again.version == first.version
        await anyio.sleep(0.2)
        assert repo.stats().origin_requests == requests + 1


def test_check_shows_the_realtime_channel(realtime_directus, directus, tmp_path):
    import subprocess
    import sys

    def check(server):
        env = {
            "PATH": "/usr/bin:/bin",
            "DIRECTUS_URL": server.url,
            "DIRECTUS_TOKEN": server.readonly_token,
            "STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / server.url.rsplit(":", 1)[1]),
        }
        subprocess.run([sys.executable, "-m", "storybench_prompts", "sync", "--all"], env=env)
        return subprocess.run(
            [sys.executable, "-m", "storybench_prompts", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    with_realtime = check(realtime_directus)
    assert with_realtime.returncode == 0, with_realtime.stdout + with_realtime.stderr
    assert "ok   realtime" in with_realtime.stdout
    assert "open: changes in 10 collection(s)" in with_realtime.stdout
    without = check(directus)
    assert without.returncode == 0, without.stdout + without.stderr
    assert "not offered by this Directus" in without.stdout
