"""The HTTP layer against scripted responses (respx): statuses, bodies, retries, secrets."""

import logging

import anyio
import httpx
import pytest
import respx

from storybench_prompts import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusClientError,
    DirectusConfigurationError,
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
    RetryPolicy,
    SourceUnavailableError,
)
from storybench_prompts.content.kinds import EVALUATION_SETS, NESTED_LIMIT, PROMPT_SETS
from storybench_prompts.content.models import EvaluationSet
from storybench_prompts.sources.directus import DirectusTimeouts
from storybench_prompts.sources.retry import call_with_retries
from tests.factories import directus_error, raw_prompt, raw_sequence, raw_version

pytestmark = pytest.mark.anyio

URL = "https://directus.example.org"
TOKEN = "s3cret-token-value"
ITEMS = f"{URL}/items/prompt_set_versions"
EVAL_ITEMS = f"{URL}/items/evaluation_versions"
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002, max_retry_after=0.01)


def source(**kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("kind", PROMPT_SETS)
    return DirectusSource(URL + "/", TOKEN, **kw)


@pytest.mark.parametrize(
    ("status", "code", "error", "also"),
    [
        (401, "INVALID_CREDENTIALS", DirectusAuthenticationError, SourceUnavailableError),
        (401, "TOKEN_EXPIRED", DirectusAuthenticationError, DirectusClientError),
        (403, "FORBIDDEN", DirectusForbiddenError, SourceUnavailableError),
        # Directus answers 403 for a missing item or collection: a 404 means DIRECTUS_URL
        # does not point at its API.
        (404, "ROUTE_NOT_FOUND", DirectusConfigurationError, ConfigurationError),
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
    # A number, not -1: Directus cuts -1 to QUERY_LIMIT_MAX without saying so.
    assert f'"_limit":{NESTED_LIMIT}' in params["deep"]
    assert '"_limit":-1' not in params["deep"]
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
        (
            httpx.Response(200, content=b'{"data": [1,', headers={"content-type": "text/plain"}),
            "not JSON",
        ),
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
                InvalidPromptSetError,
                match=r'v1 > sequence "S" \(id \d+\) > prompt "p" \(id \d+\) > text: empty',
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
            route = respx.get(ITEMS).mock(
                return_value=httpx.Response(
                    200,
                    json={
                        "data": [
                            {
                                "id": 1,
                                "version_number": 1,
                                "version_name": "one",
                                "status": "published",
                                "date_created": "2025-06-01T10:00:00.000Z",
                                "published_at": "2025-06-02T10:00:00.000Z",
                            },
                            # A schema without names, descriptions or dates: still listed.
                            {"id": 2, "version_number": 2, "status": "published"},
                        ]
                    },
                )
            )
            infos = await src.list_versions()
            assert [i.version for i in infos] == [1, 2]
            assert infos[0].version_name == "one"
            assert infos[0].published_at is not None
            assert infos[1].version_name is None
            assert infos[1].created_at is None
            params = route.calls.last.request.url.params
            # Naming an absent field is refused with 403; only `*` is safe.
            assert params["fields"] == "*"
            assert params["filter[status][_eq]"] == "published"
            assert params["sort"] == "version_number"
            assert params["limit"] == "-1"
            assert params["meta"] == "filter_count"  # to notice a listing Directus cut
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
    src = DirectusSource(URL + "///", TOKEN, kind=PROMPT_SETS)
    assert TOKEN not in repr(src)
    assert TOKEN not in repr(src._client.headers)
    assert src.url == URL


def test_missing_configuration_names_the_variable(monkeypatch):
    monkeypatch.delenv("DIRECTUS_URL", raising=False)
    monkeypatch.delenv("DIRECTUS_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="DIRECTUS_URL"):
        DirectusSource(kind=PROMPT_SETS)
    monkeypatch.setenv("DIRECTUS_URL", URL)
    with pytest.raises(ConfigurationError, match="DIRECTUS_TOKEN"):
        DirectusSource(kind=PROMPT_SETS)
    monkeypatch.setenv("DIRECTUS_TOKEN", TOKEN)
    assert DirectusSource(kind=PROMPT_SETS).url == URL


def test_plain_http_to_remote_host_warns(caplog):
    with caplog.at_level(logging.WARNING):
        DirectusSource("http://cms.example.org", TOKEN, kind=PROMPT_SETS)
        DirectusSource("http://127.0.0.1:8055", TOKEN, kind=PROMPT_SETS)
        DirectusSource("http://localhost:8055", TOKEN, kind=PROMPT_SETS)
    warnings = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1
    assert "cms.example.org" in warnings[0].getMessage()
    assert TOKEN not in caplog.text


# -- deadlines ----------------------------------------------------------------------------


def test_attempt_deadline_defaults_to_connect_plus_read():
    assert DirectusTimeouts().attempt_limit == 70.0
    assert DirectusTimeouts(connect=2, read=3).attempt_limit == 5.0
    assert DirectusTimeouts(connect=2, read=3, attempt=4.5).attempt_limit == 4.5
    with pytest.raises(ConfigurationError, match="attempt"):
        DirectusTimeouts(attempt=0)
    with pytest.raises(ConfigurationError, match="read"):
        DirectusTimeouts(read=-1)


async def test_retry_deadline_cancels_an_attempt_in_progress():
    async def hangs():
        await anyio.sleep_forever()

    policy = RetryPolicy(max_attempts=3, deadline=0.2)
    started = anyio.current_time()
    with pytest.raises(DirectusTimeoutError, match=r"0\.2 s retry deadline") as info:
        await call_with_retries(hangs, policy, what="prompt set version 1")
    assert anyio.current_time() - started < 2.0
    assert "prompt set version 1" in str(info.value)


async def test_retry_deadline_is_measured_by_the_injected_clock():
    """The budget left for an attempt comes from the injected clock, not the wall."""
    now = [0.0]
    attempts = 0

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    async def fails_then_hangs():
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise DirectusServerError("down", status=503, retry_after=99.9)
        await anyio.sleep_forever()

    # 100 s deadline; the first wait (99.9 s on the fake clock) leaves 0.1 s for attempt 2.
    policy = RetryPolicy(max_attempts=3, deadline=100, max_retry_after=99.9)
    started = anyio.current_time()
    with pytest.raises(DirectusTimeoutError, match="attempt 2") as info:
        await call_with_retries(fails_then_hangs, policy, sleep=fake_sleep, clock=lambda: now[0])
    assert attempts == 2
    assert anyio.current_time() - started < 2.0
    assert isinstance(info.value.__cause__, DirectusServerError)


async def test_an_attempt_that_ends_inside_the_deadline_is_not_cut():
    async def quick():
        await anyio.sleep(0.01)
        return "ok"

    assert await call_with_retries(quick, RetryPolicy(deadline=5)) == "ok"


# -- evaluation sets ----------------------------------------------------------------------

_ids = iter(range(10_000, 20_000))


def raw_criterion(name: str, scale: int = 5, **extra):
    return {
        "id": next(_ids),
        "evaluation_criteria_id": {
            "id": next(_ids),
            "name": name,
            "description": f"About {name}",
            "scale": scale,
            "criteria": f"How to judge {name}.\n\nIn detail.",
            **extra,
        },
    }


def raw_scoring(guidelines: str):
    return {"id": next(_ids), "scoring_id": {"id": next(_ids), "guidelines": guidelines}}


def raw_evaluation(version: int = 1, criteria=None, scoring=None, **extra):
    return {
        "id": version + 500,
        "version_number": version,
        "version_name": f"Criteria v{version}",
        "status": "published",
        "evaluation_criteria_in_version": (
            criteria if criteria is not None else [raw_criterion("creativity")]
        ),
        "scoring_in_version": scoring if scoring is not None else [],
        **extra,
    }


def eval_source(**kw):
    kw.setdefault("retry", FAST)
    return DirectusSource(URL, TOKEN, kind=EVALUATION_SETS, **kw)


async def test_evaluation_query_comes_from_the_kind():
    raw = raw_evaluation(
        3,
        [raw_criterion("character_depth", 10), raw_criterion("coherence")],
        [raw_scoring("first"), raw_scoring("second")],
    )
    async with eval_source() as src:
        with respx.mock:
            route = respx.get(EVAL_ITEMS).mock(
                return_value=httpx.Response(200, json={"data": [raw]})
            )
            evaluation = await src.get(3)
    params = route.calls.last.request.url.params
    assert params["filter[status][_eq]"] == "published"
    assert params["filter[version_number][_eq]"] == "3"
    assert params["fields"] == EVALUATION_SETS.nested_fields
    assert "evaluation_criteria_in_version.evaluation_criteria_id.*" in params["fields"]
    assert "scoring_in_version.scoring_id.*" in params["fields"]
    assert params["deep"] == EVALUATION_SETS.nested_deep
    assert f'"evaluation_criteria_in_version":{{"_limit":{NESTED_LIMIT}}}' in params["deep"]
    assert f'"scoring_in_version":{{"_limit":{NESTED_LIMIT}}}' in params["deep"]
    assert isinstance(evaluation, EvaluationSet)
    assert list(evaluation.criteria) == ["character_depth", "coherence"]
    assert evaluation.criteria["character_depth"].name == "Character Depth"
    assert evaluation.criteria["character_depth"].scale == (1, 10)
    assert evaluation.scoring_guidelines == "first"
    assert evaluation.provenance.source == "directus"


async def test_evaluation_latest_and_listing():
    async with eval_source() as src:
        with respx.mock:
            route = respx.get(EVAL_ITEMS).mock(
                side_effect=[
                    httpx.Response(200, json={"data": [raw_evaluation(7)]}),
                    httpx.Response(
                        200,
                        json={
                            "data": [
                                # storybench's spelling of the published date
                                {
                                    "id": 1,
                                    "version_number": 1,
                                    "status": "published",
                                    "pubslihed_at": "2025-06-01T12:00:00Z",
                                    "evaluation_criteria_in_version": [1, 2],
                                },
                                {"id": 2, "version_number": 2, "status": "published"},
                            ]
                        },
                    ),
                ]
            )
            latest = await src.latest()
            infos = await src.versions()
    assert route.calls[0].request.url.params["sort"] == "-version_number"
    assert latest.version == 7
    assert route.calls[1].request.url.params["fields"] == "*"
    assert [i.version for i in infos] == [1, 2]
    assert infos[0].published_at is not None
    assert infos[0].published_at.year == 2025
    assert infos[1].published_at is None


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (401, "INVALID_CREDENTIALS", DirectusAuthenticationError),
        (403, "FORBIDDEN", DirectusForbiddenError),
        (503, "SERVICE_UNAVAILABLE", DirectusServerError),
    ],
)
async def test_evaluation_errors_name_the_kind(status, code, error):
    async with eval_source(retry=RetryPolicy(max_attempts=1)) as src:
        with respx.mock:
            respx.get(EVAL_ITEMS).mock(return_value=directus_error(status, code, "nope"))
            with pytest.raises(error) as info:
                await src.get(3)
    assert "evaluation set version 3" in str(info.value)
    assert "prompt" not in str(info.value)
    assert TOKEN not in str(info.value)


async def test_evaluation_not_found_names_the_kind():
    async with eval_source() as src:
        with respx.mock:
            respx.get(EVAL_ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
            with pytest.raises(DirectusNotFoundError) as missing:
                await src.get(9)
            with pytest.raises(DirectusNotFoundError) as none:
                await src.latest()
    assert str(missing.value) == "no published evaluation set version 9 in Directus"
    assert missing.value.version == 9
    assert str(none.value) == "no published evaluation set in Directus"


async def test_invalid_evaluation_content_lists_its_problems():
    duplicate = raw_evaluation(2, [raw_criterion("creativity"), raw_criterion("creativity")])
    blank = raw_evaluation(2, [raw_criterion("creativity", criteria="   ")])
    unparseable = raw_evaluation(2, [raw_criterion("coherence", scale="lots")])
    async with eval_source() as src:
        with respx.mock:
            respx.get(EVAL_ITEMS).mock(
                side_effect=[
                    httpx.Response(200, json={"data": [duplicate]}),
                    httpx.Response(200, json={"data": [blank]}),
                    httpx.Response(200, json={"data": [unparseable]}),
                ]
            )
            errors = []
            for _ in range(3):
                with pytest.raises(InvalidPromptSetError) as info:
                    await src.get(2)
                errors.append(info.value)
    paths = [[p.path for p in e.problems] for e in errors]
    ids = [j["evaluation_criteria_id"]["id"] for j in duplicate["evaluation_criteria_in_version"]]
    assert paths[0] == [f'v2 > criterion "creativity" (id {ids[1]}) > name']
    assert paths[1] == ['v2 > criterion "creativity" > criteria']
    coherence = unparseable["evaluation_criteria_in_version"][0]["evaluation_criteria_id"]
    assert paths[2] == [f'v2 > criterion "coherence" (id {coherence["id"]}) > scale']
    assert errors[0].context == "evaluation version 2"
    # A shape error found while parsing says which answer it was.
    assert errors[2].context == "Directus evaluation set version 2"


async def test_evaluation_connection_test_reads_its_own_collection():
    async with eval_source() as src:
        with respx.mock:
            route = respx.get(EVAL_ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
            assert await src.test_connection()
    assert route.calls.last.request.url.params["fields"] == "id"


# -- siblings -----------------------------------------------------------------------------


async def test_for_kind_shares_the_client_and_only_the_original_closes_it():
    prompts = source()
    evaluations = prompts.for_kind(EVALUATION_SETS)
    assert evaluations.kind is EVALUATION_SETS
    assert prompts.kind is PROMPT_SETS
    assert evaluations._client is prompts._client
    assert (evaluations.url, evaluations.timeouts, evaluations.retry) == (
        prompts.url,
        prompts.timeouts,
        prompts.retry,
    )
    with respx.mock:
        respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [raw_version(2)]}))
        respx.get(EVAL_ITEMS).mock(
            return_value=httpx.Response(200, json={"data": [raw_evaluation(4)]})
        )
        assert (await prompts.get(2)).version == 2
        assert (await evaluations.get(4)).version == 4
        await evaluations.aclose()
        assert not prompts._client.is_closed
        assert (await prompts.get(2)).version == 2  # still usable
    await prompts.aclose()
    assert evaluations._client.is_closed


def test_repr_names_url_and_kind_never_the_token():
    src = DirectusSource(URL, TOKEN, kind=EVALUATION_SETS)
    assert repr(src) == f"DirectusSource(url={URL!r}, kind='evaluations', token=***)"
    assert TOKEN not in repr(src.for_kind(PROMPT_SETS))


@pytest.mark.anyio
async def test_a_body_nested_deeper_than_the_parser_goes_is_an_invalid_response():
    nested = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with DirectusSource(
        URL, TOKEN, retry=RetryPolicy(max_attempts=1), kind=PROMPT_SETS
    ) as source:
        with respx.mock:
            respx.get(f"{URL}/items/prompt_set_versions").mock(
                return_value=httpx.Response(200, content=nested)
            )
            with pytest.raises(DirectusInvalidResponseError):
                await source.get(1)
            with pytest.raises(DirectusInvalidResponseError):
                await source.versions()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(
            200, content=b"<html>proxy login</html>", headers={"content-type": "text/html"}
        ),
        httpx.Response(
            404, content=b"<html>no such page</html>", headers={"content-type": "text/html"}
        ),
        directus_error(404, "ROUTE_NOT_FOUND"),
    ],
    ids=["html-200", "html-404", "route-not-found"],
)
async def test_an_answer_that_cannot_be_directus_names_the_url_setting(response):
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=response)
            with pytest.raises(DirectusConfigurationError, match="DIRECTUS_URL") as raised:
                await src.get(1)
    assert raised.value.setting == "DIRECTUS_URL"
    assert isinstance(raised.value, ConfigurationError)


# -- many versions in one request ----------------------------------------------------------


def _answering_in(versions_by_number):
    """A respx side effect answering ``filter[version_number][_in]`` from a table."""

    def answer(request):
        wanted = request.url.params["filter[version_number][_in]"].split(",")
        return httpx.Response(
            200,
            json={
                "data": [versions_by_number[int(v)] for v in wanted if int(v) in versions_by_number]
            },
        )

    return answer


async def test_get_many_reads_pages_of_versions_with_the_nested_limits():
    published = {v: raw_version(v) for v in range(1, 8) if v != 5}  # 5 is not published
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(side_effect=_answering_in(published))
            found = await src.get_many([7, 1, 2, 3, 4, 5, 6, 3], page=3)
    pages = [c.request.url.params for c in route.calls]
    assert [p["filter[version_number][_in]"] for p in pages] == ["1,2,3", "4,5,6", "7"]
    for params in pages:
        assert params["filter[status][_eq]"] == "published"
        assert params["limit"] == "-1"
        assert params["meta"] == "filter_count"
        assert f'"_limit":{NESTED_LIMIT}' in params["deep"]
    assert sorted(found) == [1, 2, 3, 4, 6, 7]  # an unpublished version is absent
    assert all(found[v].version == v and found[v].directus_keys() for v in found)


async def test_get_many_serves_the_good_versions_beside_a_refused_one():
    bad = raw_version(2, sequences=[raw_sequence("S", [raw_prompt("P", text="")])])
    published = {1: raw_version(1), 2: bad, 3: raw_version(3)}
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(side_effect=_answering_in(published))
            found = await src.get_many([1, 2, 3])
    assert isinstance(found[2], InvalidPromptSetError)
    assert found[1].version == 1
    assert found[3].version == 3


async def test_get_many_of_nothing_asks_nothing():
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
            assert await src.get_many([]) == {}
    assert route.call_count == 0


async def test_an_answer_holding_another_version_is_refused_not_served():
    # A proxy or CDN in front of Directus that ignores the query string answers v2 for v3.
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": [raw_version(2)]}))
            with pytest.raises(DirectusInvalidResponseError, match="holds version 2, not 3"):
                await src.get(3)


def _capped_at(cap, versions_by_number, *, between_pages=None, count=len):
    """Directus with ``QUERY_LIMIT_MAX=cap``: ``limit=-1`` answers ``cap`` items in version
    order, above ``filter[version_number][_gt]``, and ``meta=filter_count`` counts every
    item the filter matches. ``between_pages(n)`` changes the table after page ``n``."""
    pages = [0]

    def answer(request):
        params = request.url.params
        wanted = params.get("filter[version_number][_in]")
        numbers = sorted(versions_by_number)
        if wanted is not None:
            numbers = [n for n in numbers if str(n) in wanted.split(",")]
        above = params.get("filter[version_number][_gt]")
        if above is not None:
            numbers = [n for n in numbers if n > int(above)]
        body = {"data": [versions_by_number[n] for n in numbers[:cap]]}
        if params.get("meta") == "filter_count":
            body["meta"] = {"filter_count": count(numbers)}
        pages[0] += 1
        if between_pages is not None:
            between_pages(pages[0])
        return httpx.Response(200, json=body)

    return answer


async def test_a_listing_directus_cuts_to_its_query_limit_max_is_read_whole():
    published = {v: raw_version(v) for v in range(1, 6)}
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(side_effect=_capped_at(2, published))
            infos = await src.versions()
            assert [i.version for i in infos] == [1, 2, 3, 4, 5]
            above = [c.request.url.params.get("filter[version_number][_gt]") for c in route.calls]
            assert above == [None, "2", "4"]  # by key, not by offset
            route.calls.clear()
            found = await src.get_many(range(1, 6))
            assert sorted(found) == [1, 2, 3, 4, 5]  # none taken for withdrawn
            assert len(route.calls) == 3


async def test_a_version_unpublished_between_pages_shifts_nothing():
    published = {v: raw_version(v) for v in range(1, 6)}

    def unpublish_v1(page):
        if page == 1:
            del published[1]

    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(side_effect=_capped_at(2, published, between_pages=unpublish_v1))
            found = await src.get_many(range(1, 6))
    assert sorted(found) == [1, 2, 3, 4, 5]  # v1 as it was read; v3 not lost


@pytest.mark.parametrize("count", [lambda n: str(len(n)), len])
async def test_a_count_as_digits_or_a_number_is_followed(count):
    published = {v: raw_version(v) for v in range(1, 6)}
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(side_effect=_capped_at(2, published, count=count))
            assert [i.version for i in await src.versions()] == [1, 2, 3, 4, 5]


def _pages(*pages):
    return [
        httpx.Response(200, json={"data": [raw_version(v) for v in data], "meta": meta})
        for data, meta in pages
    ]


@pytest.mark.parametrize(
    ("pages", "problem"),
    [
        # A proxy that ignores the filter hands the first page again.
        ((([1, 2], {"filter_count": 5}), ([1, 2], {"filter_count": 5})), "already read"),
        ((([1, 2], {"filter_count": 5}), ([2, 3], {"filter_count": 3})), "already read"),
        ((([1], {"filter_count": 3}), ([], {"filter_count": 2})), "counts 2 more"),
        ((([1, 2], {"filter_count": 3}), ([3], None)), "counts none more"),
        ((([2, 1], {"filter_count": 3}),), "out of version order"),
        ((([1, 1], {"filter_count": 3}),), "out of version order"),
    ],
)
async def test_a_listing_that_does_not_move_on_or_add_up_is_refused(pages, problem):
    async with source() as src:
        with respx.mock:
            route = respx.get(ITEMS).mock(side_effect=_pages(*pages))
            with pytest.raises(DirectusInvalidResponseError, match=problem):
                await src.versions()
    assert len(route.calls) == len(pages)  # refused at once, never asked in a loop


async def test_a_listing_without_a_count_is_taken_as_it_is():
    async with source() as src:
        with respx.mock:
            respx.get(ITEMS).mock(side_effect=_pages(([1, 2], None)))
            assert [i.version for i in await src.versions()] == [1, 2]
