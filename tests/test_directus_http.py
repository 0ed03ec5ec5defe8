"""The HTTP layer against scripted responses (respx): statuses, bodies, retries, secrets."""

import logging

import httpx
import pytest
import respx

from storybench_prompts import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusClientError,
    DirectusConnectionError,
    DirectusError,
    DirectusForbiddenError,
    DirectusInvalidResponseError,
    DirectusNotFoundError,
    DirectusRateLimitedError,
    DirectusRequestError,
    DirectusServerError,
    DirectusSource,
    DirectusTimeoutError,
    InvalidPromptSetError,
    PromptSetNotFoundError,
    RetryPolicy,
    SourceUnavailableError,
)
from storybench_prompts._retry import call_with_retries
from tests.factories import directus_error, raw_prompt, raw_sequence, raw_version

pytestmark = pytest.mark.anyio

URL = "https://directus.example.org"
TOKEN = "s3cret-token-value"
ITEMS = f"{URL}/items/prompt_set_versions"
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002, max_retry_after=0.01)


def source(**kw):
    kw.setdefault("retry", FAST)
    return DirectusSource(URL + "/", TOKEN, **kw)


@pytest.mark.parametrize(
    ("status", "code", "error", "also"),
    [
        (401, "INVALID_CREDENTIALS", DirectusAuthenticationError, SourceUnavailableError),
        (401, "TOKEN_EXPIRED", DirectusAuthenticationError, DirectusClientError),
        (403, "FORBIDDEN", DirectusForbiddenError, SourceUnavailableError),
        (404, "ROUTE_NOT_FOUND", DirectusNotFoundError, PromptSetNotFoundError),
        (400, "INVALID_QUERY", DirectusRequestError, DirectusClientError),
        (429, "REQUESTS_EXCEEDED", DirectusRateLimitedError, SourceUnavailableError),
        (500, "INTERNAL_SERVER_ERROR", DirectusServerError, SourceUnavailableError),
        (503, "SERVICE_UNAVAILABLE", DirectusServerError, SourceUnavailableError),
    ],
)
async def test_status_codes_map_to_typed_errors(status, code, error, also):
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=directus_error(status, code, "nope"))
            with pytest.raises(error) as info:
                await src.get(1)
    assert isinstance(info.value, also)
    assert info.value.status == status
    assert info.value.code == code
    assert info.value.detail == "nope"
    assert TOKEN not in str(info.value)


async def test_empty_data_is_not_found_with_version():
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
            with pytest.raises(DirectusNotFoundError) as info:
                await src.get(42)
    assert info.value.version == 42
    assert "42" in str(info.value)


async def test_query_asks_for_published_version_with_deep_limits():
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(
                return_value=httpx.Response(200, json={"data": [raw_version(5)]})
            )
            ps = await src.get(5)
    params = route.calls.last.request.url.params
    assert params["filter[status][_eq]"] == "published"
    assert params["filter[version_number][_eq]"] == "5"
    assert '"_limit":-1' in params["deep"]
    assert "prompts_in_sequence" in params["deep"]
    assert (
        "sequences_in_set.prompt_sequences_id.prompts_in_sequence.prompts_id.*" in params["fields"]
    )
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"
    assert ps.version == 5
    assert ps.provenance.source == "directus"


async def test_latest_sorts_by_version_descending():
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(
                return_value=httpx.Response(200, json={"data": [raw_version(9)]})
            )
            ps = await src.latest()
    assert route.calls.last.request.url.params["sort"] == "-version_number"
    assert ps.version == 9


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(200, content=b"<html>proxy error</html>"), "not JSON"),
        (httpx.Response(200, json={"items": []}), "'data'"),
        (httpx.Response(200, json=["data"]), "'data'"),
        (httpx.Response(200, json={"data": {"id": 1}}), "not a list"),
    ],
)
async def test_malformed_bodies_are_invalid_response(response, match):
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=response)
            with pytest.raises(DirectusInvalidResponseError, match=match):
                await src.get(1)


async def test_invalid_content_is_invalid_prompt_set_error():
    bad = raw_version(1, [raw_sequence("S", [raw_prompt("p", "", order=1)])])
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [bad]}))
            with pytest.raises(
                InvalidPromptSetError, match=r"prompts_in_sequence\[0\]\.text: empty"
            ):
                await src.get(1)


async def test_response_over_the_size_cap_is_refused_declared_or_streamed():
    big = {"data": [raw_version(1)], "padding": "x" * 5000}
    async with source(max_response_bytes=1000) as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json=big))
            with pytest.raises(DirectusInvalidResponseError, match="cap"):
                await src.get(1)

        async def chunks():
            for _ in range(10):
                yield b"x" * 500

        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, content=chunks()))
            with pytest.raises(DirectusInvalidResponseError, match="exceeded"):
                await src.get(1)


async def test_connection_errors_and_503_are_retried_then_succeed():
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(
                side_effect=[
                    httpx.ConnectError("refused"),
                    directus_error(503, "SERVICE_UNAVAILABLE"),
                    httpx.Response(200, json={"data": [raw_version(2)]}),
                ]
            )
            ps = await src.get(2)
    assert route.call_count == 3
    assert ps.version == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
async def test_other_errors_are_not_retried(status):
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(return_value=directus_error(status, "X"))
            with pytest.raises(DirectusError):
                await src.get(1)
    assert route.call_count == 1


async def test_retries_stop_after_max_attempts():
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(return_value=directus_error(502, "BAD_GATEWAY"))
            with pytest.raises(DirectusServerError):
                await src.get(1)
    assert route.call_count == FAST.max_attempts


async def test_retry_after_is_honoured_and_capped():
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    calls = iter(
        [
            DirectusRateLimitedError("slow down", retry_after=2.5),
            DirectusRateLimitedError("slow down", retry_after=999),
            DirectusServerError("down", status=502),
        ]
    )

    async def call():
        exc = next(calls, None)
        if exc is None:
            return "ok"
        raise exc

    policy = RetryPolicy(max_attempts=5, initial_backoff=1, max_backoff=4, max_retry_after=30)
    result = await call_with_retries(call, policy, sleep=fake_sleep, rand=lambda: 0.5)
    assert result == "ok"
    assert waits == [2.5, 30, 2.0]  # hint, capped hint, then backoff min(4, 1 * 2**2) * 0.5


async def test_retry_stops_at_the_overall_deadline():
    now = [0.0]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async def call():
        raise DirectusRateLimitedError("slow down", retry_after=4)

    policy = RetryPolicy(max_attempts=10, deadline=10)
    with pytest.raises(DirectusRateLimitedError):
        await call_with_retries(call, policy, sleep=fake_sleep, clock=lambda: now[0])
    assert waits == [4, 4]  # a third wait would end at 12 s, past the deadline


async def test_429_retry_after_header_is_parsed():
    async with source(retry=RetryPolicy(max_attempts=1)) as src:
        with respx.mock:
            respx.get(ITEMS).mock(
                return_value=directus_error(429, "REQUESTS_EXCEEDED", headers={"Retry-After": "7"})
            )
            with pytest.raises(DirectusRateLimitedError) as info:
                await src.get(1)
    assert info.value.retry_after == 7


async def test_read_timeout_is_a_timeout_error_and_not_retried():
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(side_effect=httpx.ReadTimeout("slow"))
            with pytest.raises(DirectusTimeoutError, match="within 60 s"):
                await src.get(1)
    assert route.call_count == 1


async def test_connect_timeout_is_a_connection_error():
    async with source(retry=RetryPolicy(max_attempts=1)) as src:
        with respx.mock:
            respx.get(ITEMS).mock(side_effect=httpx.ConnectTimeout("slow"))
            with pytest.raises(DirectusConnectionError):
                await src.get(1)


async def test_list_versions_parses_and_rejects_malformed_items():
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(
                return_value=httpx.Response(
                    200,
                    json={
                        "data": [
                            {
                                "id": 1,
                                "version_number": 1,
                                "version_name": "one",
                                "status": "published",
                            },
                            {"id": 2, "version_number": 2, "status": "published"},
                        ]
                    },
                )
            )
            infos = await src.list_versions()
            assert [i.version for i in infos] == [1, 2]
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [{"id": 1}]}))
            with pytest.raises(DirectusInvalidResponseError, match="item 0"):
                await src.list_versions()


async def test_one_pooled_client_per_instance():
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [raw_version(1)]}))
            client = src._client
            await src.get(1)
            await src.get(1)
            assert src._client is client
    assert client.is_closed


def test_token_never_in_repr_and_url_normalised():
    src = DirectusSource(URL + "///", TOKEN)
    assert TOKEN not in repr(src)
    assert TOKEN not in repr(src._client.headers)
    assert src.url == URL


def test_missing_configuration_names_the_variable(monkeypatch):
    monkeypatch.delenv("DIRECTUS_URL", raising=False)
    monkeypatch.delenv("DIRECTUS_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="DIRECTUS_URL"):
        DirectusSource()
    monkeypatch.setenv("DIRECTUS_URL", URL)
    with pytest.raises(ConfigurationError, match="DIRECTUS_TOKEN"):
        DirectusSource()
    monkeypatch.setenv("DIRECTUS_TOKEN", TOKEN)
    assert DirectusSource().url == URL


def test_plain_http_to_remote_host_warns(caplog):
    with caplog.at_level(logging.WARNING):
        DirectusSource("http://cms.example.org", TOKEN)
        DirectusSource("http://127.0.0.1:8055", TOKEN)
        DirectusSource("http://localhost:8055", TOKEN)
    warnings = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1
    assert "cms.example.org" in warnings[0].getMessage()
    assert TOKEN not in caplog.text


async def test_storybench_names_work():
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [raw_version(4)]}))
            assert (await src.fetch_prompts()).version == 4
            assert (await src.fetch_prompts(version_number=4)).version == 4
    flat = DirectusSource.convert_to_storybench_format(raw_version(3)).to_storybench()
    assert flat["version"] == 3
    assert len(flat["sequences"]) == 5


async def test_storybench_constructor_is_accepted():
    from storybench_prompts import DirectusClient

    client = DirectusClient(base_url=URL, token=TOKEN, timeout=90)
    assert client.timeouts.read == 90
    assert client.url == URL
    assert TOKEN not in repr(client)
    async with DirectusClient(URL, TOKEN) as positional:
        assert positional.timeouts.read == 60
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [raw_version(2)]}))
            assert (await positional.fetch_prompts(version_number=2)).version == 2
    await client.aclose()
