"""The sets this library serves, reshaped into storybench's models (and raw items back)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from ...content.models import EvaluationSet, PromptSet, VersionedContent, VersionInfo
from .models import (
    CriterionInVersion,
    DirectusEvaluationCriterion,
    DirectusEvaluationVersion,
    DirectusPrompt,
    DirectusPromptSequence,
    DirectusPromptSetVersion,
    DirectusScoring,
    PromptInSequence,
    PublicationStatus,
    ScoringInVersion,
    SequenceInSet,
    StorybenchEvaluationCriterion,
    StorybenchEvaluationStructure,
    StorybenchPromptConfig,
    StorybenchPromptsStructure,
)

__all__ = [
    "evaluation_structure",
    "evaluation_version",
    "listed_version",
    "prompts_structure",
    "prompts_version",
    "raw_item",
]


M = TypeVar("M", bound=BaseModel)


def _linked(model: M, attr: str, content: VersionedContent) -> M:
    """``model`` holding a private link (``attr``) to the served set it was made from
    (``linked()`` tells it from a copy)."""
    setattr(model, attr, content)
    model._linked_to = id(model)  # type: ignore[attr-defined]
    return model


def _created_at(content: VersionedContent) -> datetime:
    if content.created_at is not None:
        return content.created_at
    if content.provenance is not None:
        return content.provenance.fetched_at
    return datetime.now(UTC)


def prompts_structure(prompt_set: PromptSet) -> StorybenchPromptsStructure:
    structure = StorybenchPromptsStructure(
        sequences={
            name: tuple(StorybenchPromptConfig(name=p.name, text=p.text) for p in prompts)
            for name, prompts in prompt_set.sequences.items()
        },
        version=prompt_set.version,
        directus_id=prompt_set.directus_id,
        created_at=_created_at(prompt_set),
        updated_at=prompt_set.updated_at,
    )
    return _linked(structure, "_content", prompt_set)


def prompts_version(prompt_set: PromptSet) -> DirectusPromptSetVersion:
    published = PublicationStatus.PUBLISHED
    version = DirectusPromptSetVersion(
        id=prompt_set.directus_id,
        version_number=prompt_set.version,
        version_name=prompt_set.version_name,
        status=published,
        date_created=prompt_set.created_at,
        date_updated=prompt_set.updated_at,
        published_at=prompt_set.published_at,
        sequences_in_set=tuple(
            SequenceInSet(
                prompt_sequences_id=DirectusPromptSequence(
                    sequence_name=name,
                    status=published,
                    prompts_in_sequence=tuple(
                        PromptInSequence(
                            prompts_id=DirectusPrompt(
                                name=p.name, text=p.text, status=published, order_in_sequence=i
                            )
                        )
                        for i, p in enumerate(prompts, start=1)
                    ),
                )
            )
            for name, prompts in prompt_set.sequences.items()
        ),
    )
    return _linked(version, "_served", prompt_set)


def listed_version(info: VersionInfo) -> DirectusPromptSetVersion:
    return DirectusPromptSetVersion(
        id=info.directus_id,
        version_number=info.version,
        version_name=info.version_name,
        description=info.description,
        status=info.status,
        date_created=info.created_at,
        date_updated=info.updated_at,
        published_at=info.published_at,
    )


def evaluation_structure(evaluation_set: EvaluationSet) -> StorybenchEvaluationStructure:
    structure = StorybenchEvaluationStructure(
        criteria={
            key: StorybenchEvaluationCriterion(
                name=c.name, description=c.description, scale=c.scale, criteria=c.criteria
            )
            for key, c in evaluation_set.criteria.items()
        },
        scoring_guidelines=evaluation_set.scoring_guidelines,
        version=evaluation_set.version,
        version_name=evaluation_set.version_name,
        directus_id=evaluation_set.directus_id,
        created_at=_created_at(evaluation_set),
        updated_at=evaluation_set.updated_at,
    )
    return _linked(structure, "_content", evaluation_set)


def evaluation_version(evaluation_set: EvaluationSet) -> DirectusEvaluationVersion:
    guidelines = evaluation_set.scoring_guidelines
    version = DirectusEvaluationVersion(
        id=evaluation_set.directus_id,
        version_number=evaluation_set.version,
        version_name=evaluation_set.version_name,
        status=PublicationStatus.PUBLISHED,
        date_created=evaluation_set.created_at,
        date_updated=evaluation_set.updated_at,
        published_at=evaluation_set.published_at,
        evaluation_criteria_in_version=tuple(
            CriterionInVersion(
                evaluation_criteria_id=DirectusEvaluationCriterion(
                    name=key,
                    description=c.description,
                    scale=c.scale[1],
                    criteria=c.criteria,
                    sort=i,
                )
            )
            for i, (key, c) in enumerate(evaluation_set.criteria.items(), start=1)
        ),
        scoring_in_version=(
            (ScoringInVersion(scoring_id=DirectusScoring(guidelines=guidelines)),)
            if guidelines
            else ()
        ),
    )
    return _linked(version, "_served", evaluation_set)


def raw_item(version: object) -> Mapping[str, Any]:
    """A version given to a ``convert_*`` method, as the raw Directus item it stands for."""
    if isinstance(version, Mapping):
        return version
    if isinstance(version, BaseModel):
        # Any pydantic model with Directus's field names works, storybench's own included.
        dumped: dict[str, Any] = version.model_dump(mode="json", exclude_none=True, by_alias=False)
        return dumped
    raise TypeError(
        f"expected a Directus version (a model or a dict), got {type(version).__name__}"
    )
