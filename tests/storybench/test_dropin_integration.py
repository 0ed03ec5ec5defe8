"""storybench's ``tests/clients/test_directus_integration.py``, against the local Directus.

Each test named like one of storybench's stands for it (same calls, same expectations), run
twice: through the shared cache, and with it turned off (every call goes to Directus). The
local Directus holds published versions 1-3, a draft 4 and an archived 5 (``devserver``).
"""

from __future__ import annotations

import pytest

import storybench_prompts
from devserver.directus import DirectusServer
from storybench_prompts import DirectusClientError, Settings, build_repository
from storybench_prompts.compat.storybench.client import DirectusClient
from storybench_prompts.compat.storybench.models import PublicationStatus

pytestmark = [pytest.mark.anyio, pytest.mark.directus]


@pytest.fixture(params=["shared-cache", "no-cache"])
def cache_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no-cache":
        monkeypatch.setenv("STORYBENCH_PROMPTS_SHARED_CACHE", "false")
    return str(request.param)


@pytest.fixture
def client(directus_env: DirectusServer, cache_mode: str, settled: None) -> DirectusClient:
    return DirectusClient(timeout=90)  # storybench: longer timeout for serverless spin-up


# -- storybench's tests --------------------------------------------------------------------


async def test_connection(client: DirectusClient) -> None:
    is_connected = await client.test_connection()
    assert is_connected is True


async def test_fetch_latest_published_version(client: DirectusClient) -> None:
    version = await client.get_latest_published_version()

    assert version is not None
    assert version.version_number >= 1
    assert version.status == PublicationStatus.PUBLISHED
    assert version.sequences_in_set is not None
    assert len(version.sequences_in_set) > 0
    for sequence_junction in version.sequences_in_set:
        sequence = sequence_junction.prompt_sequences_id
        assert sequence.status == PublicationStatus.PUBLISHED
        assert sequence.prompts_in_sequence is not None
        assert len(sequence.prompts_in_sequence) > 0
        for prompt_junction in sequence.prompts_in_sequence:
            prompt = prompt_junction.prompts_id
            assert prompt.status == PublicationStatus.PUBLISHED
            assert prompt.name
            assert prompt.text


async def test_fetch_version_by_number(client: DirectusClient) -> None:
    version = await client.get_version_by_number(1)

    assert version is not None
    assert version.version_number == 1
    assert version.status == PublicationStatus.PUBLISHED


async def test_convert_to_storybench_format(client: DirectusClient) -> None:
    version = await client.get_latest_published_version()
    assert version is not None

    storybench_data = await client.convert_to_storybench_format(version)

    assert storybench_data.version == version.version_number
    assert storybench_data.directus_id == version.id
    assert len(storybench_data.sequences) > 0
    for _seq_name, prompts in storybench_data.sequences.items():
        assert len(prompts) > 0
        for prompt in prompts:
            assert prompt.name
            assert prompt.text


async def test_fetch_prompts_default_version(client: DirectusClient) -> None:
    prompts = await client.fetch_prompts()

    assert prompts is not None
    assert prompts.version >= 1
    assert len(prompts.sequences) > 0


async def test_fetch_prompts_specific_version(client: DirectusClient) -> None:
    prompts = await client.fetch_prompts(version_number=1)

    assert prompts is not None
    assert prompts.version == 1
    assert len(prompts.sequences) > 0


async def test_fetch_nonexistent_version(client: DirectusClient) -> None:
    prompts = await client.fetch_prompts(version_number=999)
    assert prompts is None


async def test_list_published_versions(client: DirectusClient) -> None:
    versions = await client.list_published_versions()

    assert len(versions) > 0
    assert all(v.status == PublicationStatus.PUBLISHED for v in versions)
    assert all(v.version_number >= 1 for v in versions)
    version_numbers = [v.version_number for v in versions]
    assert version_numbers == sorted(version_numbers, reverse=True)


async def test_error_handling_invalid_token(directus_env: DirectusServer, cache_mode: str) -> None:
    invalid_client = DirectusClient(token="invalid-token", timeout=30)

    with pytest.raises(DirectusClientError):
        await invalid_client.get_latest_published_version()


# -- ours, against the same server ---------------------------------------------------------


async def test_drafts_and_archived_versions_are_none(client: DirectusClient) -> None:
    assert (await client.fetch_prompts()).version == 3  # type: ignore[union-attr]
    assert await client.fetch_prompts(4) is None  # draft
    assert await client.fetch_prompts(5) is None  # archived
    assert await client.get_version_by_number(4) is None
    assert [v.version_number for v in await client.list_published_versions()] == [3, 2, 1]


async def test_draft_items_are_left_out_and_prompts_follow_their_order(
    client: DirectusClient,
) -> None:
    # Version 2 holds a draft sequence and a draft prompt; prompts were attached in reverse.
    prompts = await client.fetch_prompts(2)
    assert prompts is not None
    assert "UnfinishedDraft" not in prompts.sequences
    film = [p.name for p in prompts.sequences["FilmNarrative"]]
    assert film == ["Initial Concept", "Scene Development", "Visual Realization"]


async def test_the_client_and_the_library_serve_the_same_content(
    client: DirectusClient, directus_env: DirectusServer
) -> None:
    settings = Settings(directus_url=directus_env.url, directus_token=directus_env.readonly_token)
    async with build_repository(settings) as repository:
        prompt_set = await repository.get(2)
    structure = await client.fetch_prompts(2)
    assert structure is not None
    assert structure.config_hash == prompt_set.config_hash
    assert structure.model_dump(mode="json")["sequences"] == prompt_set.sequences_as_dicts()
    assert structure.directus_id == prompt_set.directus_id
    assert structure.created_at == prompt_set.created_at


async def test_the_exported_models_are_the_classes_the_drop_in_returns(
    client: DirectusClient,
) -> None:
    version = await client.get_version_by_number(1)
    assert isinstance(version, storybench_prompts.DirectusPromptSetVersion)
    assert isinstance(
        version.sequences_in_set[0].prompt_sequences_id.prompts_in_sequence[0].prompts_id,
        storybench_prompts.DirectusPrompt,
    )
    evaluation = await client.get_evaluation_version_by_number(1)
    assert isinstance(evaluation, storybench_prompts.DirectusEvaluationVersion)
