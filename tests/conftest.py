"""Fixtures that start real servers: Directus (from npm) and nx-27017 (a MongoDB wire server).

Outside CI a server that cannot be installed or started skips its tests with the reason;
with ``CI=true`` the same failure is an error, so CI never passes on skipped integration tests.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn, TypeVar

import httpx
import pytest
from hypothesis import settings as hypothesis_settings

from devserver.directus import DirectusServer, template_db
from devserver.mongo import MongoServer
from devserver.sample_data import seed_all

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Timing deadlines make property tests flaky on a loaded 2-core machine; they test behaviour.
hypothesis_settings.register_profile("default", deadline=None, print_blob=True)
hypothesis_settings.load_profile("default")


def _unavailable(what: str, exc: BaseException) -> NoReturn:
    message = f"{what} unavailable: {type(exc).__name__}: {exc}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- Directus -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def directus_template() -> Any:
    try:
        return template_db()
    except Exception as exc:  # install or bootstrap failed
        _unavailable("local Directus (npm install / bootstrap)", exc)


S = TypeVar("S", DirectusServer, MongoServer)


@contextlib.contextmanager
def _serving(what: str, start: Callable[[], S]) -> Iterator[S]:
    """A server for the length of a fixture; one that cannot start skips (fails in CI)."""
    try:
        server = start()
    except Exception as exc:
        _unavailable(what, exc)
    try:
        yield server
    finally:
        server.stop()


def _seeded_directus(
    template: Any, *, minimal: bool = False, env: dict[str, str] | None = None
) -> Iterator[DirectusServer]:
    def start() -> DirectusServer:
        return DirectusServer.start_from(template, env_overrides=env)

    with _serving("local Directus (start)", start) as server:
        seed_all(server, minimal=minimal)
        yield server


@pytest.fixture(scope="session")
def directus(directus_template: Any) -> Iterator[DirectusServer]:
    """A shared, seeded Directus. Tests must not stop, stall or modify it."""
    yield from _seeded_directus(directus_template)


@pytest.fixture
def own_directus(directus_template: Any) -> Iterator[DirectusServer]:
    """A seeded Directus of the test's own, which it may stop, stall or change."""
    yield from _seeded_directus(directus_template)


@pytest.fixture(scope="session")
def capped_directus(directus_template: Any) -> Iterator[DirectusServer]:
    """A shared, seeded Directus with ``QUERY_LIMIT_MAX=2``: it cuts ``limit=-1`` listings and
    nested lists to two items without saying so. Tests must not change it."""
    yield from _seeded_directus(directus_template, env={"QUERY_LIMIT_MAX": "2"})


@pytest.fixture(scope="session")
def minimal_directus() -> Iterator[DirectusServer]:
    """A shared, seeded Directus whose schema has only the fields the content needs (no
    version names, descriptions, dates...). Tests must not stop, stall or modify it."""
    try:
        template = template_db(minimal=True)
    except Exception as exc:
        _unavailable("local Directus with the minimal schema (bootstrap)", exc)
    yield from _seeded_directus(template, minimal=True)


# Directus's own overload guard, tripped on purpose: any resident memory counts as overload,
# so after its first 250 ms sample every request is refused with 503 "Under pressure".
UNDER_PRESSURE = {
    "PRESSURE_LIMITER_ENABLED": "true",
    "PRESSURE_LIMITER_MAX_MEMORY_RSS": "1",
    "PRESSURE_LIMITER_RETRY_AFTER": "7",
}


@pytest.fixture
def directus_under_pressure(directus_template: Any) -> Iterator[DirectusServer]:
    """A Directus that answers every request with 503 "Under pressure" and Retry-After: 7."""

    def start() -> DirectusServer:
        return DirectusServer.start_from(
            directus_template,
            env_overrides=UNDER_PRESSURE,
            ready_statuses=frozenset({200, 503}),  # 200 only before the first sample
        )

    with _serving("local Directus (start under pressure)", start) as server:
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.url}/server/ping").status_code != 503:
            assert time.monotonic() < deadline, "the pressure limiter never tripped"
            time.sleep(0.05)
        yield server


# -- MongoDB --------------------------------------------------------------------------------


def _nx() -> Iterator[MongoServer]:
    with _serving("nx-27017", MongoServer.start) as server:
        yield server


@pytest.fixture(scope="session")
def nx_server() -> Iterator[MongoServer]:
    yield from _nx()


@pytest.fixture
def own_nx_server() -> Iterator[MongoServer]:
    """An nx-27017 of the test's own, which it may stall or kill."""
    yield from _nx()


REAL_MONGODB_URI = os.environ.get("MONGODB_URI")


REAL_MONGODB_MARKS = [
    pytest.mark.real_mongodb,
    pytest.mark.skipif(not REAL_MONGODB_URI, reason="MONGODB_URI not set"),
]


def mongo_targets() -> list[Any]:
    return [
        pytest.param("nx", id="nx-27017"),
        pytest.param("real", id="real-mongodb", marks=REAL_MONGODB_MARKS),
    ]


@pytest.fixture
def unique_db_name() -> str:
    return f"sbp_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=mongo_targets())
def mongo_uri(request: pytest.FixtureRequest) -> str:
    """nx-27017 always; a real MongoDB too when MONGODB_URI is set."""
    if request.param == "real":
        assert REAL_MONGODB_URI is not None
        return REAL_MONGODB_URI
    return str(request.getfixturevalue("nx_server").uri)


@pytest.fixture
async def mongo_database(mongo_uri: str, unique_db_name: str) -> AsyncIterator[Any]:
    """A PyMongo async database on the target server, dropped afterwards."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    db = client[unique_db_name]
    try:
        yield db
    finally:
        try:
            await client.drop_database(unique_db_name)
        finally:
            await client.close()


# -- CI guard: integration tests that skip make the run fail --------------------------------

_SERVER_MARKERS = {"directus", "mongodb"}
_skipped_integration: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and IN_CI:
        keywords = set(report.keywords)
        if keywords & _SERVER_MARKERS and "real_mongodb" not in keywords:
            _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_integration:
        print(f"\nCI=true but {len(_skipped_integration)} integration test(s) were skipped:")
        for nodeid in _skipped_integration[:20]:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
