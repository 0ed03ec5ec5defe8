"""storybench's ``tests/services/test_directus_integration_service.py``, and its integration
service and ``sync-prompts`` driven through our client against the local Directus.

The service and the command are rewritten from storybench's documented behaviour in
``storybench_flows``; each ``sync-prompts`` invocation runs in an ``asyncio.run`` of its own,
as storybench's click command does, so these also prove the shared cache across loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from unittest.mock import AsyncMock, MagicMock

import pytest
from pymongo import AsyncMongoClient

from devserver.directus import DirectusServer
from devserver.mongo import MongoServer
from storybench_prompts.compat.storybench.client import DirectusClient
from storybench_prompts.compat.storybench.models import (
    StorybenchPromptConfig,
    StorybenchPromptsStructure,
)
from tests.storybench.conftest import background_work_done
from tests.storybench.storybench_flows import (
    IntegrationService,
    storybench_config_hash,
    sync_prompts,
)

T = TypeVar("T")

# -- storybench's test ---------------------------------------------------------------------


@pytest.fixture
def mock_database() -> AsyncMock:
    return AsyncMock()


@pytest.fixture
def mock_directus_client() -> DirectusClient:
    # storybench's fixture is an AsyncMock; ours is our client, its fetch replaced below.
    return DirectusClient(base_url="https://test-directus.com", token="test-token")


@pytest.fixture
def service(mock_database: AsyncMock, mock_directus_client: DirectusClient) -> IntegrationService:
    service = IntegrationService(mock_database, mock_directus_client)
    service.prompt_repo = AsyncMock()
    service.config_service = MagicMock()
    return service


@pytest.fixture
def sample_directus_data() -> StorybenchPromptsStructure:
    return StorybenchPromptsStructure(
        sequences={
            "story_sequence": [
                StorybenchPromptConfig(name="intro", text="Write an introduction"),
                StorybenchPromptConfig(name="body", text="Write the main story"),
            ],
            "analysis_sequence": [
                StorybenchPromptConfig(name="analyze", text="Analyze the content")
            ],
        },
        version=1,
        directus_id=123,
        created_at=datetime.now(UTC),
    )


@pytest.mark.anyio
async def test_sync_prompts_from_directus_success(
    service: IntegrationService, sample_directus_data: StorybenchPromptsStructure
) -> None:
    service.directus_client.fetch_prompts = AsyncMock(return_value=sample_directus_data)
    service.config_service.generate_config_hash.return_value = "test_hash"
    service.prompt_repo.find_by_config_hash = AsyncMock(return_value=None)
    service.prompt_repo.deactivate_all = AsyncMock()
    service.prompt_repo.create = AsyncMock()

    result = await service.sync_prompts_from_directus()

    assert result is not None
    assert result.version == 1
    assert "story_sequence" in result.sequences
    assert "analysis_sequence" in result.sequences
    service.prompt_repo.deactivate_all.assert_called_once()
    service.prompt_repo.create.assert_called_once()


# -- the real flows ------------------------------------------------------------------------


def run_with_database(uri: str, database_name: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """One ``asyncio.run``, as storybench's commands do, with its own MongoDB client."""

    async def main() -> T:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri, serverSelectionTimeoutMS=5000, tz_aware=True
        )
        try:
            result = await work(client[database_name])
            await background_work_done()  # our mirror writes, before the loop closes
            return result
        finally:
            await client.close()

    return asyncio.run(main())


@pytest.mark.directus
@pytest.mark.mongodb
def test_sync_prompts_command_with_each_option(
    directus_env: DirectusServer, nx_server: MongoServer, unique_db_name: str
) -> None:
    def command(**options: Any) -> list[str]:
        return run_with_database(
            nx_server.uri, unique_db_name, lambda db: sync_prompts(db, **options)
        )

    tested = command(test_connection=True)
    assert tested[:2] == ["Testing connection to Directus CMS...", "✅ Connection successful!"]
    assert "Version: 3" in tested  # the command goes on to sync the latest version

    listed = command(list_versions=True)
    assert "Found 3 published versions:" in listed
    assert [line for line in listed if line.startswith("  Version")] == [
        "  Version 3: Sample set v3",
        "  Version 2: Sample set v2",
        "  Version 1: Sample set v1",
    ]

    pinned = command(version=2)
    assert pinned[1:4] == ["✅ Prompts synced successfully!", "Version: 2", "Sequences: 5"]
    assert "  - FilmNarrative: 3 prompts" in pinned
    assert pinned[-1] == "Active prompts version: 2"

    latest = command()
    assert latest[-1] == "Active prompts version: 3"

    missing = command(version=999)
    assert missing[-1] == "❌ No prompts found to sync"

    async def documents(db: Any) -> list[dict[str, Any]]:
        return await db["prompts"].find({}, {"_id": 0}).sort("version", 1).to_list()

    docs = run_with_database(nx_server.uri, unique_db_name, documents)
    # Content-addressed as storybench saves: one document per config_hash, the last active.
    assert [(d["version"], d["is_active"]) for d in docs] == [(2, False), (3, True)]
    fetched = run_with_database(
        nx_server.uri, unique_db_name, lambda _db: DirectusClient().fetch_prompts(3)
    )
    assert fetched is not None
    assert docs[1]["config_hash"] == fetched.config_hash


@pytest.mark.directus
def test_sync_prompts_command_reports_a_rejected_token(
    directus_env: DirectusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIRECTUS_TOKEN", "not-the-token")
    lines = asyncio.run(sync_prompts(None, test_connection=True))
    assert lines == ["Testing connection to Directus CMS...", "❌ Connection failed!"]
    listed = asyncio.run(sync_prompts(None, list_versions=True))
    assert listed[-1].startswith("❌ Error: Failed to list versions: ")


@pytest.mark.anyio
@pytest.mark.directus
@pytest.mark.mongodb
async def test_integration_service_against_local_directus_and_mongodb(
    directus_env: DirectusServer, mongo_database: Any, settled: None
) -> None:
    service = IntegrationService(mongo_database)  # builds its own DirectusClient()

    assert await service.test_directus_connection() is True
    listed = await service.list_available_versions()
    assert [v["version_number"] for v in listed] == [3, 2, 1]
    assert listed[0]["name"] == "Sample set v3"

    synced = await service.sync_prompts_from_directus()
    assert synced is not None
    assert synced.version == 3
    served = await DirectusClient().fetch_prompts()
    assert served is not None
    # storybench's hash of what it stored equals ours of what we served.
    assert synced.config_hash == served.config_hash
    assert synced.config_hash == storybench_config_hash(
        {
            "sequences": served.model_dump(mode="json")["sequences"],
            "version": 3,
            "directus_id": served.directus_id,
        }
    )

    assert (await service.sync_prompts_from_directus(1)).version == 1  # type: ignore[union-attr]
    assert await service.sync_prompts_from_directus(999) is None
    active = await service.get_active_prompts()
    assert active is not None
    assert active["version"] == 1
    assert await mongo_database["prompts"].count_documents({}) == 2
