"""storybench's ``tests/clients/test_directus_client.py``, run against our ``DirectusClient``.

Each test named like one of storybench's stands for it: same inputs, same expectations. Its
four ``_make_request`` tests patch ``httpx.AsyncClient`` itself, which only works with a client
that opens a new connection per request (storybench's defect); ours answer the same statuses
from a scripted transport (respx) instead. The tests after them are our own.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from unittest.mock import patch

import httpx
import pytest
import respx

from storybench_prompts import (
    DirectusAuthenticationError,
    DirectusClientError,
    DirectusConnectionError,
    DirectusNotFoundError,
    DirectusServerError,
    InvalidPromptSetError,
    PromptSetUnavailableError,
)
from storybench_prompts._exceptions import DirectusConfigurationError
from storybench_prompts.compat.storybench.client import DirectusClient
from storybench_prompts.compat.storybench.errors import (
    DirectusInvalidContentError,
    DirectusUnavailableError,
)
from storybench_prompts.compat.storybench.models import (
    DirectusPrompt,
    DirectusPromptSequence,
    DirectusPromptSetVersion,
    PromptInSequence,
    PublicationStatus,
    SequenceInSet,
)
from storybench_prompts.compat.storybench.registry import _REGISTRY
from tests.factories import directus_error, raw_prompt, raw_sequence, raw_version

URL = "https://test-directus.com"
ITEMS = f"{URL}/items/prompt_set_versions"


@pytest.fixture(autouse=True)
def no_realtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # The scripted Directus of these tests has no WebSocket: the channel must not dial out.
    monkeypatch.setenv("STORYBENCH_PROMPTS_REALTIME", "off")


@pytest.fixture
def client(settled: None) -> DirectusClient:
    return DirectusClient(base_url=URL, token="test-token", timeout=30)


# -- storybench's tests --------------------------------------------------------------------


def test_init_with_params() -> None:
    client = DirectusClient(base_url="https://example.com", token="abc123", timeout=45)
    assert client.base_url == "https://example.com"
    assert client.token == "abc123"
    assert client.timeout == 45


def test_init_with_env_vars() -> None:
    with patch.dict(
        os.environ, {"DIRECTUS_URL": "https://env-test.com", "DIRECTUS_TOKEN": "env-token"}
    ):
        client = DirectusClient()
        assert client.base_url == "https://env-test.com"
        assert client.token == "env-token"


def test_init_missing_url() -> None:
    with pytest.raises(DirectusClientError, match="Directus URL not provided"):
        DirectusClient(token="test-token")


def test_init_missing_token() -> None:
    with pytest.raises(DirectusClientError, match="Directus token not provided"):
        DirectusClient(base_url="https://test.com")


def test_base_url_trailing_slash_removal() -> None:
    client = DirectusClient(base_url="https://test.com/", token="test-token")
    assert client.base_url == "https://test.com"


@pytest.mark.anyio
async def test_make_request_success(client: DirectusClient) -> None:
    with respx.mock:
        respx.get(f"{URL}/test").mock(return_value=httpx.Response(200, json={"data": "test"}))
        result = await client._make_request("GET", "/test")
    assert result == {"data": "test"}


@pytest.mark.anyio
async def test_make_request_auth_error(client: DirectusClient) -> None:
    with respx.mock:
        respx.get(f"{URL}/test").mock(return_value=httpx.Response(401))
        with pytest.raises(DirectusAuthenticationError):
            await client._make_request("GET", "/test")


@pytest.mark.anyio
async def test_make_request_not_found_error(client: DirectusClient) -> None:
    with respx.mock:
        respx.get(f"{URL}/test").mock(return_value=httpx.Response(404))
        with pytest.raises(DirectusNotFoundError):
            await client._make_request("GET", "/test")


@pytest.mark.anyio
async def test_make_request_server_error(client: DirectusClient) -> None:
    with respx.mock:
        respx.get(f"{URL}/test").mock(return_value=httpx.Response(500))
        with pytest.raises(DirectusServerError):
            await client._make_request("GET", "/test")


# -- ours: construction ---------------------------------------------------------------------


def test_missing_url_and_token_are_configuration_errors() -> None:
    with pytest.raises(DirectusConfigurationError):
        DirectusClient(token="t")
    with pytest.raises(DirectusConfigurationError):
        DirectusClient(base_url="https://x.org")


@pytest.mark.anyio
async def test_construction_builds_no_http_client_and_touches_no_registry() -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an HTTP client was built")

    loop = asyncio.get_running_loop()
    with patch.object(httpx.AsyncClient, "__init__", refuse):
        clients = [DirectusClient(base_url=URL, token="t") for _ in range(100)]
    assert len(clients) == 100
    assert loop not in _REGISTRY


def test_repr_hides_the_token() -> None:
    client = DirectusClient(base_url=URL, token="s3cret-token")
    assert "s3cret-token" not in repr(client)
    assert URL in repr(client)


# -- ours: _make_request ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_make_request_keeps_the_query_in_the_endpoint_and_adds_params(
    client: DirectusClient,
) -> None:
    with respx.mock:
        route = respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
        await client._make_request(
            "GET", "/items/prompt_set_versions?limit=1", params={"fields": "id"}
        )
    sent = route.calls.last.request
    assert sent.url.params["limit"] == "1"
    assert sent.url.params["fields"] == "id"
    assert sent.headers["authorization"] == "Bearer test-token"


@pytest.mark.anyio
async def test_make_request_retries_a_get_but_never_a_post(client: DirectusClient) -> None:
    with respx.mock:
        get = respx.get(f"{URL}/flaky").mock(
            side_effect=[directus_error(503, "SERVICE_UNAVAILABLE"), httpx.Response(200, json={})]
        )
        post = respx.post(f"{URL}/items/x").mock(
            return_value=directus_error(503, "SERVICE_UNAVAILABLE")
        )
        assert await client._make_request("GET", "/flaky") == {}
        with pytest.raises(DirectusServerError):
            await client._make_request("POST", "/items/x", json={"a": 1})
    assert get.call_count == 2
    assert post.call_count == 1
    assert post.calls.last.request.content == b'{"a":1}'


@pytest.mark.anyio
async def test_make_request_refuses_arguments_it_would_ignore(client: DirectusClient) -> None:
    with pytest.raises(TypeError, match="headers"):
        await client._make_request("GET", "/x", headers={"a": "b"})


@pytest.mark.anyio
async def test_make_request_maps_a_refused_connection(client: DirectusClient) -> None:
    with respx.mock:
        respx.get(f"{URL}/x").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(DirectusConnectionError):
            await client._make_request("GET", "/x")


# -- ours: what the cache answers, and the errors ------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        directus_error(401, "INVALID_CREDENTIALS"),
        directus_error(500, "INTERNAL_SERVER_ERROR"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
    ids=["401", "500", "refused", "timeout"],
)
async def test_test_connection_is_false_and_never_raises(
    client: DirectusClient, answer: Any
) -> None:
    with respx.mock:
        route = respx.get(ITEMS)
        if isinstance(answer, Exception):
            route.mock(side_effect=answer)
        else:
            route.mock(return_value=answer)
        assert await client.test_connection() is False


@pytest.mark.anyio
async def test_test_connection_asks_directus_every_time(client: DirectusClient) -> None:
    with respx.mock:
        route = respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
        assert await client.test_connection() is True
        assert await DirectusClient(URL, "test-token").test_connection() is True
    assert route.call_count == 2


@pytest.mark.anyio
async def test_a_failure_with_nothing_to_fall_back_on_is_a_directus_client_error(
    client: DirectusClient,
) -> None:
    with respx.mock:
        respx.get(ITEMS).mock(return_value=directus_error(500, "INTERNAL_SERVER_ERROR"))
        with pytest.raises(DirectusClientError) as caught:
            await client.fetch_prompts()
    error = caught.value
    assert isinstance(error, DirectusUnavailableError)
    assert isinstance(error, PromptSetUnavailableError)
    assert error.status == 500
    assert isinstance(error.directus_error, DirectusServerError)
    assert isinstance(error.causes[0], DirectusServerError)
    assert str(error).count("DirectusServerError") == 1  # each cause named once


@pytest.mark.anyio
async def test_invalid_content_is_a_directus_client_error_listing_problems(
    client: DirectusClient,
) -> None:
    bad = raw_version(4, [raw_sequence("Seq", [raw_prompt("P", "   ")])])
    with respx.mock:
        respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [bad]}))
        with pytest.raises(DirectusClientError) as caught:
            await client.get_version_by_number(4)
    unavailable = caught.value
    assert isinstance(unavailable, DirectusUnavailableError)
    assert isinstance(unavailable.causes[0], InvalidPromptSetError)
    with pytest.raises(DirectusInvalidContentError) as invalid:
        await client.convert_to_storybench_format(bad)
    assert isinstance(invalid.value, DirectusClientError)
    sequence = bad["sequences_in_set"][0]["prompt_sequences_id"]
    prompt = sequence["prompts_in_sequence"][0]["prompts_id"]
    assert [p.path for p in invalid.value.problems] == [
        f'v4 > sequence "Seq" (id {sequence["id"]}) > prompt "P" (id {prompt["id"]}) > text'
    ]


@pytest.mark.anyio
async def test_a_missing_version_is_none_and_remembered(client: DirectusClient) -> None:
    with respx.mock:
        route = respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
        assert await client.fetch_prompts(999) is None
        assert await DirectusClient(URL, "test-token").fetch_prompts(999) is None
        assert await DirectusClient(URL, "test-token").get_version_by_number(999) is None
        assert await DirectusClient(URL, "test-token").get_latest_published_version() is None
    # 999 asked once, then remembered; "latest" asked once.
    assert route.call_count == 2


@pytest.mark.anyio
async def test_fresh_instances_share_one_request_and_one_object(client: DirectusClient) -> None:
    with respx.mock:
        route = respx.get(ITEMS).mock(
            return_value=httpx.Response(200, json={"data": [raw_version(3)]})
        )
        first = await client.fetch_prompts()
        again = [await DirectusClient(URL, "test-token").fetch_prompts() for _ in range(50)]
        other_token = await DirectusClient(URL, "other-token").fetch_prompts()
    assert route.call_count == 2  # one per (URL, token)
    assert all(p is first for p in again)
    assert other_token is not first
    assert other_token == first


@pytest.mark.anyio
async def test_concurrent_first_calls_share_one_stack_and_one_request(settled: None) -> None:
    with respx.mock:
        route = respx.get(ITEMS).mock(
            return_value=httpx.Response(200, json={"data": [raw_version(3)]})
        )
        results = await asyncio.gather(
            *(DirectusClient(URL, "test-token").fetch_prompts() for _ in range(20))
        )
    assert route.call_count == 1
    assert all(r is results[0] for r in results)
    loop = asyncio.get_running_loop()
    assert len(_REGISTRY[loop]) == 1


@pytest.mark.anyio
async def test_with_the_shared_cache_off_every_call_goes_to_directus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORYBENCH_PROMPTS_SHARED_CACHE", "false")
    with respx.mock:
        route = respx.get(ITEMS).mock(
            return_value=httpx.Response(200, json={"data": [raw_version(3)]})
        )
        results = [await DirectusClient(URL, "test-token").fetch_prompts() for _ in range(3)]
        respx.get(ITEMS).mock(return_value=directus_error(401, "INVALID_CREDENTIALS"))
        with pytest.raises(DirectusAuthenticationError):
            await DirectusClient(URL, "test-token").fetch_prompts()
        respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
        assert await DirectusClient(URL, "test-token").fetch_prompts(7) is None
    assert route.call_count == 5
    assert results[0] == results[2]
    assert results[0].version == 3


@pytest.mark.anyio
async def test_a_malformed_setting_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORYBENCH_PROMPTS_SHARED_CACHE", "perhaps")
    with pytest.raises(DirectusConfigurationError, match="SHARED_CACHE"):
        await DirectusClient(URL, "test-token").fetch_prompts()
    assert await DirectusClient(URL, "test-token").test_connection() is False


@pytest.mark.anyio
async def test_a_url_that_is_not_http_is_a_configuration_error() -> None:
    with pytest.raises(DirectusConfigurationError, match="http"):
        await DirectusClient("ftp://cms.example.org", "t").fetch_prompts()


# -- ours: the models -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_versions_come_in_storybench_models_built_from_the_served_set(
    client: DirectusClient,
) -> None:
    raw = raw_version(
        2,
        [
            raw_sequence(
                "Seq",
                [
                    raw_prompt("Third", order=3),
                    raw_prompt("Draft", order=0, status="draft"),
                    raw_prompt("First", order=1),
                ],
            ),
            raw_sequence("Hidden", [raw_prompt("X")], status="draft"),
            raw_sequence("AllDrafts", [raw_prompt("Y", status="draft")]),
        ],
        description="a description",
    )
    with respx.mock:
        respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [raw]}))
        version = await client.get_version_by_number(2)
        assert version is not None
        again = await DirectusClient(URL, "test-token").get_version_by_number(2)
    assert again is version
    assert version.version_number == 2
    assert version.id == 102
    assert version.status == PublicationStatus.PUBLISHED == "published"
    assert version.version_name == "v2"
    assert version.sequences_in_set is not None
    [junction] = version.sequences_in_set
    sequence = junction.prompt_sequences_id
    assert sequence.sequence_name == "Seq"
    assert sequence.prompts_in_sequence is not None
    prompts = [j.prompts_id for j in sequence.prompts_in_sequence]
    assert [(p.name, p.order_in_sequence, p.status) for p in prompts] == [
        ("First", 1, "published"),
        ("Third", 2, "published"),
    ]
    structure = await client.convert_to_storybench_format(version)
    assert structure is await client.convert_to_storybench_format(version)
    assert [p.name for p in structure.sequences["Seq"]] == ["First", "Third"]
    assert structure.created_at is not None
    with pytest.raises(ValueError, match="frozen"):
        structure.version = 9  # type: ignore[misc]


@pytest.mark.anyio
async def test_convert_accepts_a_raw_item_and_any_model_with_directus_field_names(
    client: DirectusClient,
) -> None:
    raw = raw_version(5, [raw_sequence("S", [raw_prompt("B", order=2), raw_prompt("A", order=1)])])
    from_raw = await client.convert_to_storybench_format(raw)
    assert from_raw.version == 5
    assert from_raw.directus_id == 105
    assert [p.name for p in from_raw.sequences["S"]] == ["A", "B"]

    built = DirectusPromptSetVersion(
        id=7,
        version_number=1,
        version_name="by hand",
        status=PublicationStatus.PUBLISHED,
        sequences_in_set=(
            SequenceInSet(
                prompt_sequences_id=DirectusPromptSequence(
                    id=1,
                    sequence_name="S",
                    status=PublicationStatus.PUBLISHED,
                    prompts_in_sequence=(
                        PromptInSequence(
                            prompts_id=DirectusPrompt(
                                id=1, name="only", text="t", status=PublicationStatus.PUBLISHED
                            )
                        ),
                    ),
                )
            ),
        ),
    )
    from_model = await client.convert_to_storybench_format(built)
    assert from_model.sequences["S"][0].text == "t"
    assert from_model.created_at is not None  # never None, as storybench's
    assert len(from_model.config_hash) == 16


@pytest.mark.anyio
async def test_the_listing_is_newest_first_with_storybench_field_names(
    client: DirectusClient,
) -> None:
    listing = [
        {"id": 101, "version_number": 1, "version_name": "one", "status": "published"},
        {"id": 103, "version_number": 3, "version_name": "three", "status": "published"},
        {"id": 102, "version_number": 2, "version_name": "two", "status": "published"},
    ]
    with respx.mock:
        respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": listing}))
        versions = await client.list_published_versions()
    assert [v.version_number for v in versions] == [3, 2, 1]
    assert [v.id for v in versions] == [103, 102, 101]
    assert versions[0].version_name == "three"
    assert all(v.sequences_in_set is None for v in versions)
