"""The caching repository over the real HTTP layer, with respx playing Directus.

Each failure Directus can hand us, as it reaches the wire, gets the treatment the decision table
in docs/architecture.md gives it: served from the mirror, counted, visible in the status.
"""

import anyio
import httpx
import pytest
import respx

from storybench_prompts import (
    PROMPT_SETS,
    CachePolicy,
    CachingRepository,
    DirectusAuthenticationError,
    DirectusConfigurationError,
    DirectusConnectionError,
    DirectusForbiddenError,
    DirectusInvalidResponseError,
    DirectusNotFoundError,
    DirectusRateLimitedError,
    DirectusRequestError,
    DirectusServerError,
    DirectusSource,
    DirectusTimeoutError,
    InMemoryMirror,
    InvalidPromptSetError,
    OriginState,
    RetryPolicy,
)
from tests.factories import directus_error, flat_set, raw_prompt, raw_sequence, raw_version

pytestmark = pytest.mark.anyio

URL = "https://directus.example.org"
TOKEN = "s3cret-token-value"
ITEMS = f"{URL}/items/prompt_set_versions"
RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002, max_retry_after=0.01)
POLICY = CachePolicy(fallback_after=5.0, not_found_ttl=60)

BLANK_TEXT = raw_version(2, [raw_sequence("S", [raw_prompt("p", "  ", order=1)])])

OUTAGE, ANSWER = OriginState.INTERRUPTED, OriginState.INITIALIZING
FAILURES = [
    # (what Directus does, the error it becomes, requests made with RETRY, what it says of
    # Directus: an outage, or a fact about one answer that leaves its state as it was)
    (directus_error(403, "FORBIDDEN"), DirectusForbiddenError, 1, ANSWER),
    (directus_error(400, "INVALID_QUERY"), DirectusRequestError, 1, ANSWER),
    (directus_error(429, "REQUESTS_EXCEEDED"), DirectusRateLimitedError, 3, OUTAGE),
    (directus_error(500, "INTERNAL_SERVER_ERROR"), DirectusServerError, 1, OUTAGE),
    (directus_error(503, "SERVICE_UNAVAILABLE"), DirectusServerError, 3, OUTAGE),
    (httpx.ReadTimeout("stalled"), DirectusTimeoutError, 1, OUTAGE),
    (httpx.ConnectError("refused"), DirectusConnectionError, 3, OUTAGE),
    (
        httpx.Response(200, content=b'{"data": [', headers={"content-type": "application/json"}),
        DirectusInvalidResponseError,
        1,
        ANSWER,
    ),
    (httpx.Response(200, json={"data": [BLANK_TEXT]}), InvalidPromptSetError, 1, ANSWER),
]
IDS = ["403", "400", "429", "500", "503", "timeout", "refused", "not-json", "invalid"]


def answer(route: respx.Route, reply: httpx.Response | Exception) -> None:
    if isinstance(reply, Exception):
        route.mock(side_effect=reply)
    else:
        route.mock(return_value=reply)


def source() -> DirectusSource:
    return DirectusSource(URL, TOKEN, retry=RETRY, kind=PROMPT_SETS)


@pytest.mark.parametrize(("reply", "error", "requests", "state"), FAILURES, ids=IDS)
async def test_every_directus_failure_is_served_from_the_mirror(reply, error, requests, state):
    mirrored = flat_set(2)
    async with CachingRepository(
        source(), InMemoryMirror([mirrored], kind=PROMPT_SETS), policy=POLICY
    ) as repo:
        with respx.mock:
            route = respx.get(ITEMS)
            answer(route, reply)
            served = await repo.get(2)
            # A retried failure is served at its first attempt; the retries go on behind.
            with anyio.fail_after(5):
                while not repo.stats().origin_errors:
                    await anyio.sleep(0.001)
        assert route.call_count == requests
        assert served.provenance.source == "mirror"
        assert served.provenance.origin_error == error.__name__
        assert served.config_hash == mirrored.config_hash
        assert repo.stats().origin_errors == {error.__name__: 1}
        stats = repo.stats()
        # Served at the first failed attempt (failover) or when the fetch gave up (fallback).
        assert (stats.failovers, stats.mirror_fallbacks) == ((1, 0) if requests > 1 else (0, 1))
        status = repo.status()
        assert status.state is state
        assert status.last_error_kind == error.__name__
        assert status.auth_failed is False
        assert TOKEN not in (status.last_error or "")


MISCONFIGURED = [
    # (what answers, the error, the setting it names)
    (directus_error(401, "INVALID_CREDENTIALS"), DirectusAuthenticationError, "DIRECTUS_TOKEN"),
    (
        httpx.Response(200, content=b"<!doctype html><html>Directus admin</html>",
                       headers={"content-type": "text/html"}),
        DirectusConfigurationError,
        "DIRECTUS_URL",
    ),
    (directus_error(404, "ROUTE_NOT_FOUND"), DirectusConfigurationError, "DIRECTUS_URL"),
    (
        httpx.Response(404, content=b"<html>Not Found</html>", headers={"content-type": "text/html"}),
        DirectusConfigurationError,
        "DIRECTUS_URL",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "error", "setting"), MISCONFIGURED, ids=["401", "html", "404", "404-html"]
)
async def test_a_misconfiguration_is_raised_even_when_the_mirror_holds_the_set(
    reply, error, setting
):
    async with CachingRepository(
        source(), InMemoryMirror([flat_set(2)], kind=PROMPT_SETS), policy=POLICY
    ) as repo:
        with respx.mock:
            answer(respx.get(ITEMS), reply)
            for _ in range(2):
                with pytest.raises(error) as raised:
                    await repo.get(2)
                assert raised.value.setting == setting
                assert setting in str(raised.value)
        status = repo.status()
        assert status.misconfigured == setting
        assert repo.stats().mirror_fallbacks == 0
        assert TOKEN not in str(raised.value)


async def test_a_version_directus_does_not_publish_is_not_served_from_the_mirror():
    # The mirror may still hold a version Directus has since unpublished: Directus's answer wins,
    # and is remembered for not_found_ttl so a typo in a config cannot hammer Directus.
    async with CachingRepository(
        source(), InMemoryMirror([flat_set(2)], kind=PROMPT_SETS), policy=POLICY
    ) as repo:
        with respx.mock:
            route = respx.get(ITEMS).mock(return_value=httpx.Response(200, json={"data": []}))
            for _ in range(3):
                with pytest.raises(DirectusNotFoundError):
                    await repo.get(2)
        assert route.call_count == 1
        assert repo.stats().not_found_hits == 2
        assert repo.status().state is OriginState.VALID
