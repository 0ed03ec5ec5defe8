"""The cache behind the drop-in, against real servers: what storybench's call sites get.

storybench builds a fresh ``DirectusClient()`` at every call site; these tests do the same.
Directus requests are counted where they leave (httpx's network transport). Timings of a
paused Directus are wall-clock against a real server, with a margin for a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from pymongo import AsyncMongoClient

from devserver.directus import DirectusServer
from devserver.mongo import MongoServer
from storybench_prompts import (
    DirectusAuthenticationError,
    DirectusClientError,
    DirectusConnectionError,
)
from storybench_prompts.compat.storybench.client import DirectusClient
from storybench_prompts.compat.storybench.errors import DirectusUnavailableError
from storybench_prompts.compat.storybench.models import StorybenchPromptsStructure
from storybench_prompts.compat.storybench.registry import _REGISTRY, close_shared_clients
from tests.storybench.conftest import SentRequests, background_work_done
from tests.storybench.storybench_flows import evaluation_criteria

FALLBACK_AFTER = 0.5
MARGIN = 1.0  # the mirror read and a loaded 2-core machine


# -- one request for many fresh instances -----------------------------------------------------


@pytest.mark.anyio
@pytest.mark.directus
async def test_fresh_instances_make_one_directus_request(
    directus_env: DirectusServer, sent: SentRequests, settled: None
) -> None:
    first = await DirectusClient().fetch_prompts()
    sequential = [await DirectusClient().fetch_prompts() for _ in range(50)]
    concurrent = await asyncio.gather(*(DirectusClient().fetch_prompts() for _ in range(50)))
    assert first is not None
    assert all(p is first for p in [*sequential, *concurrent])
    assert len(sent.items()) == 1

    # storybench's scripts: the version model and its conversion come from the same entry.
    version = await DirectusClient().get_latest_published_version()
    assert version is not None
    assert await DirectusClient().convert_to_storybench_format(version) == first
    assert len(sent.items()) == 1


@pytest.mark.anyio
@pytest.mark.directus
async def test_a_warm_call_reads_neither_directus_nor_the_mirror(
    directus_env: DirectusServer, sent: SentRequests, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm = await DirectusClient().fetch_prompts(2)
    await background_work_done()
    before = len(sent)

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the mirror was read")

    from storybench_prompts.mirrors.file import FileMirror

    monkeypatch.setattr(FileMirror, "get", refuse)
    monkeypatch.setattr(FileMirror, "latest", refuse)
    for _ in range(200):
        assert await DirectusClient().fetch_prompts(2) is warm
    assert len(sent) == before


@pytest.mark.anyio
@pytest.mark.directus
async def test_a_missing_version_is_none_and_remembered(
    directus_env: DirectusServer, sent: SentRequests, settled: None
) -> None:
    for _ in range(5):
        assert await DirectusClient().fetch_prompts(999) is None
    assert await DirectusClient().get_version_by_number(999) is None
    assert len(sent.items()) == 1


@pytest.mark.anyio
@pytest.mark.directus
async def test_with_the_shared_cache_off_every_call_goes_to_directus(
    directus_env: DirectusServer, sent: SentRequests, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORYBENCH_PROMPTS_SHARED_CACHE", "false")
    results = [await DirectusClient().fetch_prompts() for _ in range(3)]
    assert all(r is not None and r.version == 3 for r in results)
    assert len(sent.items()) == 3
    assert await DirectusClient().fetch_prompts(999) is None
    assert await DirectusClient().fetch_prompts(999) is None
    assert len(sent.items()) == 5


# -- event loops ----------------------------------------------------------------------------


class AsyncioProblems(logging.Handler):
    """asyncio's complaints (a task destroyed while pending, an exception never retrieved),
    kept as text: a kept record would hold its task, and so the loop, alive."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR or "never retrieved" in message:
            self.messages.append(message)


@contextlib.contextmanager
def strict_loops() -> Iterator[AsyncioProblems]:
    """Warnings are errors, and asyncio's complaints are collected."""
    problems = AsyncioProblems()
    logger = logging.getLogger("asyncio")
    logger.addHandler(problems)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield problems
            gc.collect()  # unclosed sockets, files and transports warn here
    finally:
        logger.removeHandler(problems)


@pytest.mark.directus
def test_repeated_asyncio_run_works_and_leaves_nothing_behind(
    directus_env: DirectusServer, sent: SentRequests
) -> None:
    client = DirectusClient()  # one instance across loops, as a module-level client would be
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def one_run() -> str:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        prompts = await client.fetch_prompts()
        fresh = await DirectusClient().fetch_prompts()
        assert prompts is not None
        assert fresh is prompts
        await background_work_done()
        return prompts.config_hash

    with strict_loops() as problems:
        hashes = [asyncio.run(one_run(), debug=True) for _ in range(3)]

    assert problems.messages == []
    assert len(set(hashes)) == 1
    assert len(sent.items()) == 3  # each loop has a cache of its own
    assert not _REGISTRY
    assert all(ref() is None for ref in loops)  # no loop kept alive by the registry


@pytest.mark.directus
def test_a_loop_not_run_by_asyncio_run_is_closed_with_close_shared_clients(
    directus_env: DirectusServer,
) -> None:
    async def work() -> StorybenchPromptsStructure | None:
        prompts = await DirectusClient().fetch_prompts()
        await background_work_done()
        return prompts

    with strict_loops() as problems:
        loop = asyncio.new_event_loop()
        loop.set_debug(True)
        try:
            assert loop.run_until_complete(work()) is not None
            assert loop in _REGISTRY
            loop.run_until_complete(close_shared_clients())
            assert loop not in _REGISTRY
            assert not asyncio.all_tasks(loop)
        finally:
            loop.close()
        del loop
    assert problems.messages == []


@pytest.mark.directus
def test_with_realtime_an_edit_is_served_before_the_ttl_and_loops_close_cleanly(
    realtime_directus_env: DirectusServer,
) -> None:
    server = realtime_directus_env

    async def edit_then_read() -> tuple[str, str]:
        before = await DirectusClient().fetch_prompts(1)
        assert before is not None
        first_text = before.sequences["FilmNarrative"][0].text
        with server.admin() as admin:
            found = admin.get(
                "/items/prompts",
                params={"filter[text][_eq]": first_text, "fields": "id", "limit": "1"},
            ).json()["data"]
        server.update_item("prompts", found[0]["id"], {"text": first_text + " edited"})
        with anyio.fail_after(10):  # the pinned TTL is an hour: only the channel can do this
            while True:
                after = await DirectusClient().fetch_prompts(1)
                assert after is not None
                if after.sequences["FilmNarrative"][0].text != first_text:
                    break
                await asyncio.sleep(0.05)
        await background_work_done()
        return first_text, after.sequences["FilmNarrative"][0].text

    with strict_loops() as problems:
        first, edited = asyncio.run(edit_then_read(), debug=True)
        asyncio.run(_read_once(), debug=True)  # a second loop, its channel closed as well
    assert edited == first + " edited"
    assert problems.messages == []
    assert not _REGISTRY


async def _read_once() -> None:
    assert await DirectusClient().fetch_prompts() is not None
    await background_work_done()


# -- Directus cold, stalled or down ---------------------------------------------------------


@pytest.mark.directus
def test_a_stalled_directus_costs_fallback_after_then_the_mirror_serves(
    own_directus_env: DirectusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORYBENCH_PROMPTS_FALLBACK_AFTER", str(FALLBACK_AFTER))

    async def warm() -> tuple[Any, Any]:
        prompts = await DirectusClient().fetch_prompts()
        criteria = await DirectusClient().get_latest_published_evaluation_version()
        await background_work_done()  # the mirror now holds both
        return prompts, criteria

    warm_prompts, warm_criteria = asyncio.run(warm())

    async def stalled() -> tuple[Any, float, Any, float]:
        started = time.monotonic()
        prompts = await DirectusClient().fetch_prompts()
        prompts_took = time.monotonic() - started
        started = time.monotonic()
        version = await DirectusClient().get_latest_published_evaluation_version()
        criteria = await DirectusClient().convert_to_storybench_evaluation_format(version)  # type: ignore[arg-type]
        criteria_took = time.monotonic() - started
        return prompts, prompts_took, criteria, criteria_took

    # A new process's view: an empty cache, a mirror, and a Directus that accepts
    # connections but never answers (a serverless cold start).
    with own_directus_env.paused():
        prompts, prompts_took, criteria, criteria_took = asyncio.run(stalled())

    assert prompts == warm_prompts
    assert prompts.config_hash == warm_prompts.config_hash
    assert prompts_took < FALLBACK_AFTER + MARGIN
    assert criteria.version == warm_criteria.version_number
    assert criteria_took < FALLBACK_AFTER + MARGIN


@pytest.mark.directus
def test_a_dead_directus_leaves_the_cache_then_the_mirror(
    own_directus_env: DirectusServer,
) -> None:
    async def before_and_during() -> Any:
        latest = await DirectusClient().fetch_prompts()
        pinned = await DirectusClient().fetch_prompts(1)
        assert await evaluation_criteria(DirectusClient()) is not None
        await background_work_done()
        own_directus_env.kill()
        # The same loop: the cache answers, no Directus needed.
        assert await DirectusClient().fetch_prompts() is latest
        assert await DirectusClient().fetch_prompts(1) is pinned
        assert await DirectusClient().test_connection() is False
        return latest

    latest = asyncio.run(before_and_during())

    async def new_process() -> None:
        # An empty cache: the mirror answers what it holds.
        served = await DirectusClient().fetch_prompts()
        assert served == latest
        pinned = await DirectusClient().fetch_prompts(1)
        assert pinned is not None
        assert pinned.version == 1
        criteria = await evaluation_criteria(DirectusClient())  # storybench's evaluator
        assert criteria.version == 3
        assert criteria.scoring_guidelines
        listed = await DirectusClient().list_published_versions()
        assert [v.version_number for v in listed] == [3, 1]
        # What the mirror lacks cannot be "not found" while Directus is down.
        with pytest.raises(DirectusClientError) as caught:
            await DirectusClient().fetch_prompts(2)
        assert isinstance(caught.value, DirectusUnavailableError)
        assert isinstance(caught.value.directus_error, DirectusConnectionError)

    asyncio.run(new_process())


@pytest.mark.directus
def test_listing_with_directus_down_and_an_empty_mirror_raises(
    own_directus_env: DirectusServer,
) -> None:
    own_directus_env.kill()

    async def listing() -> None:
        # An empty mirror cannot stand for Directus: the caller gets the failure, as a
        # DirectusClientError (what storybench catches) whose first cause is Directus's.
        with pytest.raises(DirectusClientError) as info:
            await DirectusClient().list_published_versions()
        assert isinstance(info.value.causes[0], DirectusConnectionError)

    asyncio.run(listing())


@pytest.mark.directus
def test_a_rejected_token_gets_no_mirrored_copy(directus_env: DirectusServer) -> None:
    async def warm() -> None:
        assert await DirectusClient().fetch_prompts() is not None
        await background_work_done()  # the mirror holds the latest set

    asyncio.run(warm())

    async def rejected() -> None:
        bad = DirectusClient(token="invalid-token")
        with pytest.raises(DirectusAuthenticationError):
            await bad.get_latest_published_version()
        with pytest.raises(DirectusAuthenticationError):
            await bad.fetch_prompts()
        with pytest.raises(DirectusAuthenticationError):
            await bad.list_published_versions()
        assert await bad.test_connection() is False
        # The token Directus accepts is served in the same loop.
        assert await DirectusClient().fetch_prompts() is not None
        await background_work_done()

    asyncio.run(rejected())


# -- the MongoDB mirror is storybench's collection --------------------------------------------


@pytest.mark.anyio
@pytest.mark.directus
@pytest.mark.mongodb
async def test_mongodb_uri_mirrors_into_storybench_collections(
    directus_env: DirectusServer,
    nx_server: MongoServer,
    unique_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
    settled: None,
) -> None:
    monkeypatch.setenv("MONGODB_URI", nx_server.uri)
    monkeypatch.setenv("STORYBENCH_PROMPTS_MONGODB_DATABASE", unique_db_name)
    prompts = await DirectusClient().fetch_prompts()
    version = await DirectusClient().get_latest_published_evaluation_version()
    assert prompts is not None
    assert version is not None
    await background_work_done()

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(nx_server.uri)
    try:
        db = client[unique_db_name]
        stored = await db["prompts"].find_one({"version": prompts.version})
        assert stored is not None
        assert stored["config_hash"] == prompts.config_hash
        assert set(stored["sequences"]) == set(prompts.sequences)
        criteria = await db["evaluation_criteria"].find_one({"version": version.version_number})
        assert criteria is not None
    finally:
        await client.drop_database(unique_db_name)
        await client.close()
