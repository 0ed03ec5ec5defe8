"""Ways a hostile review broke the drop-in client; each reproduced before its fix."""

from __future__ import annotations

import asyncio
import copy
import pickle

import pytest

from devserver.directus import DirectusServer
from storybench_prompts import DirectusClient, DirectusClientError
from storybench_prompts.compat.storybench.errors import DirectusUnavailableError

pytestmark = pytest.mark.directus


@pytest.fixture(autouse=True)
def no_realtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # These Directus servers do not offer realtime; the channel is tested elsewhere.
    monkeypatch.setenv("STORYBENCH_PROMPTS_REALTIME", "off")


def test_served_structures_cannot_be_changed_for_the_next_caller(
    directus_env: DirectusServer,
) -> None:
    async def main() -> None:
        first = await DirectusClient().fetch_prompts()
        assert first is not None
        with pytest.raises((TypeError, AttributeError)):
            first.sequences.clear()  # type: ignore[attr-defined]
        again = await DirectusClient().fetch_prompts()
        assert again is not None
        assert len(again.sequences) == 5
        client = DirectusClient()
        version = await client.get_latest_published_evaluation_version()
        assert version is not None
        criteria = await client.convert_to_storybench_evaluation_format(version)
        with pytest.raises((TypeError, AttributeError)):
            criteria.criteria.clear()  # type: ignore[attr-defined]
        assert hash(again) == hash(again)

    asyncio.run(main())


def test_served_objects_copy_deep_and_pickle(directus_env: DirectusServer) -> None:
    async def main() -> None:
        client = DirectusClient()
        structure = await client.fetch_prompts()
        version = await client.get_version_by_number(2)
        evaluation = await client.get_latest_published_evaluation_version()
        for served in (structure, version, evaluation):
            assert served is not None
            assert served.model_copy(deep=True) == served
            assert copy.deepcopy(served) == served
            assert pickle.loads(pickle.dumps(served)) == served

    asyncio.run(main())


def test_a_changed_copy_converts_from_its_own_fields(directus_env: DirectusServer) -> None:
    async def main() -> None:
        client = DirectusClient()
        version = await client.get_version_by_number(2)
        assert version is not None
        assert version.sequences_in_set is not None
        only = tuple(
            s
            for s in version.sequences_in_set
            if s.prompt_sequences_id.sequence_name == "FilmNarrative"
        )
        trimmed = version.model_copy(update={"sequences_in_set": only, "version_number": 99})
        converted = await client.convert_to_storybench_format(trimmed)
        assert converted.version == 99
        assert list(converted.sequences) == ["FilmNarrative"]
        whole = await client.convert_to_storybench_format(version)
        assert whole.version == 2
        assert len(whole.sequences) == 5

    asyncio.run(main())


def test_a_token_with_a_trailing_newline_works_and_never_shows(
    directus_env: DirectusServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = directus_env.readonly_token + "\n"

    async def main() -> None:
        client = DirectusClient(token=token)
        assert await client.test_connection() is True
        assert await client.fetch_prompts() is not None

    asyncio.run(main())
    assert directus_env.readonly_token not in caplog.text


def test_a_token_no_header_can_carry_is_a_configuration_error(
    directus_env: DirectusServer,
) -> None:
    async def main() -> None:
        client = DirectusClient(token="tok\u00a0en")
        assert await client.test_connection() is False
        with pytest.raises(DirectusClientError, match="HTTP header"):
            await client.fetch_prompts()

    asyncio.run(main())


def test_make_request_never_sends_the_token_to_another_host(directus_env: DirectusServer) -> None:
    async def main() -> None:
        with pytest.raises(DirectusClientError, match="absolute URL"):
            await DirectusClient()._make_request("GET", "http://127.0.0.1:9/collect")

    asyncio.run(main())


def test_bad_ports_versions_and_timeouts_are_client_errors(directus_env: DirectusServer) -> None:
    async def main() -> None:
        typo = DirectusClient("http://localhost:80555", "t")
        assert await typo.test_connection() is False
        with pytest.raises(DirectusClientError):
            await typo.list_published_versions()
        client = DirectusClient()
        for wrong in (2.7, True, "x"):
            with pytest.raises(DirectusClientError):
                await client.fetch_prompts(wrong)  # type: ignore[arg-type]
        assert (await client.fetch_prompts("2")) is not None  # type: ignore[arg-type]
        with pytest.raises(DirectusClientError):
            DirectusClient(timeout="abc")  # type: ignore[arg-type]

    asyncio.run(main())


def test_a_token_refused_with_403_gets_no_mirrored_copy(directus_env: DirectusServer) -> None:
    with directus_env.admin() as admin:
        admin.post(
            "/users",
            json={
                "email": "nobody@example.com",
                "token": "no-permission-token",
                "status": "active",
            },
        ).raise_for_status()

    async def main() -> None:
        assert await DirectusClient().fetch_prompts() is not None  # the mirror holds it
        refused = DirectusClient(token="no-permission-token")
        assert await refused.test_connection() is False
        with pytest.raises(DirectusClientError) as info:
            await refused.fetch_prompts()
        assert not isinstance(info.value, DirectusUnavailableError) or info.value.status == 403

    asyncio.run(main())


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "does not parse"),
        ("http://127.0.0.1:9/\x00", "control character"),
        ("http://127.0.0.1:9/cms dir", "space"),
    ],
)
def test_a_url_that_does_not_parse_is_a_client_error_naming_the_setting(
    url: str, problem: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(tmp_path))

    async def main() -> None:
        with pytest.raises(DirectusClientError, match=f"DIRECTUS_URL.*{problem}"):
            await DirectusClient(url, "token").fetch_prompts(1)

    asyncio.run(main())
