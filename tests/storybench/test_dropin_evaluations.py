"""storybench's evaluation methods on the drop-in, against the local Directus.

Expected values follow storybench's documented conversion: criteria keyed by their Directus
name in the version's order, each ``{name: title-cased, description, scale: [1, scale],
criteria}``; the first scoring item's guidelines, ``""`` when there is none. The local
Directus holds evaluation versions 1-3 (2 with 120 criteria, 3 with two scoring items), a
draft 4 and an archived 5 (``devserver.sample_data``).
"""

from __future__ import annotations

import pytest

from devserver.directus import DirectusServer
from devserver.sample_data import (
    ADDED_CRITERIA,
    CRITERIA,
    CRITERION_SCALES,
    FIRST_CRITERIA,
    MANY_CRITERIA,
    SCORING_GUIDELINES,
)
from storybench_prompts.compat.storybench.client import DirectusClient
from storybench_prompts.compat.storybench.models import DirectusEvaluationVersion, PublicationStatus
from tests.storybench.conftest import SentRequests
from tests.storybench.storybench_flows import evaluation_criteria

pytestmark = [pytest.mark.anyio, pytest.mark.directus]

# storybench's query for one evaluation version, as its client sends it.
STORYBENCH_FIELDS = (
    "*,evaluation_criteria_in_version.evaluation_criteria_id.*,scoring_in_version.scoring_id.*"
)


@pytest.fixture(params=["shared-cache", "no-cache"])
def client(
    request: pytest.FixtureRequest,
    directus_env: DirectusServer,
    monkeypatch: pytest.MonkeyPatch,
    settled: None,
) -> DirectusClient:
    if request.param == "no-cache":
        monkeypatch.setenv("STORYBENCH_PROMPTS_SHARED_CACHE", "false")
    return DirectusClient(timeout=90)


def expected_criterion(name: str) -> dict[str, object]:
    description, instructions = CRITERIA[name]
    return {
        "name": name.replace("_", " ").title(),
        "description": description,
        "scale": [1, CRITERION_SCALES.get(name, 5)],
        "criteria": instructions,
    }


async def test_latest_evaluation_version_and_its_conversion(client: DirectusClient) -> None:
    version = await client.get_latest_published_evaluation_version()
    assert version is not None
    assert version.version_number == 3
    assert version.status == PublicationStatus.PUBLISHED
    assert version.evaluation_criteria_in_version is not None
    names = [j.evaluation_criteria_id.name for j in version.evaluation_criteria_in_version]
    assert names == [*FIRST_CRITERIA, *ADDED_CRITERIA]

    structure = await client.convert_to_storybench_evaluation_format(version)
    converted = structure.model_dump(mode="json")
    assert converted["version"] == 3
    assert converted["version_name"] == "Evaluation criteria v3"
    assert converted["directus_id"] == version.id
    assert converted["criteria"] == {
        name: expected_criterion(name) for name in [*FIRST_CRITERIA, *ADDED_CRITERIA]
    }
    assert converted["scoring_guidelines"] == SCORING_GUIDELINES["strict"]  # the first item
    assert structure.criteria["character_depth"].name == "Character Depth"
    assert structure.criteria["adaptability"].scale[1] == 10
    assert structure.created_at is not None


async def test_evaluation_version_by_number_keeps_every_criterion(client: DirectusClient) -> None:
    version = await client.get_evaluation_version_by_number(2)
    assert version is not None
    structure = await client.convert_to_storybench_evaluation_format(version)
    assert len(structure.criteria) == MANY_CRITERIA  # not cut at Directus's 100
    assert list(structure.criteria)[:2] == ["aspect_000", "aspect_001"]
    assert structure.scoring_guidelines == ""  # no scoring item


async def test_draft_archived_and_missing_evaluation_versions_are_none(
    client: DirectusClient,
) -> None:
    assert await client.get_evaluation_version_by_number(4) is None  # draft
    assert await client.get_evaluation_version_by_number(5) is None  # archived
    assert await client.get_evaluation_version_by_number(999) is None


async def test_the_served_conversion_equals_converting_storybench_raw_answer(
    client: DirectusClient,
) -> None:
    # What a storybench script does by hand: its own query through _make_request, then the
    # conversion of the raw item. It must agree with what the cache serves.
    raw = await client._make_request(
        "GET",
        "/items/evaluation_versions",
        params={
            "filter[version_number][_eq]": "1",
            "filter[status][_eq]": "published",
            "fields": STORYBENCH_FIELDS,
        },
    )
    from_raw = await client.convert_to_storybench_evaluation_format(raw["data"][0])
    from_model = await client.convert_to_storybench_evaluation_format(
        DirectusEvaluationVersion.model_validate(raw["data"][0])
    )
    served_version = await client.get_evaluation_version_by_number(1)
    assert served_version is not None
    served = await client.convert_to_storybench_evaluation_format(served_version)
    assert from_raw == served
    assert from_model == served
    assert from_raw.config_hash == served.config_hash
    assert served.scoring_guidelines == SCORING_GUIDELINES["standard"]
    assert DirectusEvaluationVersion.model_validate(raw["data"][0]).published_at is not None


async def test_storybench_evaluator_with_fresh_clients_makes_one_request(
    directus_env: DirectusServer, sent: SentRequests, settled: None
) -> None:
    first = await evaluation_criteria(DirectusClient())
    for _ in range(20):
        assert await evaluation_criteria(DirectusClient()) is first
    assert first.version == 3
    assert len(sent.to("/items/evaluation_versions")) == 1
    with pytest.raises(ValueError, match="No evaluation version found for version 4"):
        await evaluation_criteria(DirectusClient(), 4)
