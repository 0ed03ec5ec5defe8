"""What Directus stores, item by item: the shapes its nested answers are validated against.

Unknown extra fields are allowed (CMS editors add fields) and missing required ones are
problems. A junction row whose item is not readable holds None. These are read-only inputs
to the converters in ``prompt_sets`` and ``evaluation_sets``; the shapes the drop-in returns,
with storybench's own names, are in ``compat.storybench.models``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from .models import DirectusId, Status

__all__ = [
    "CriterionItem",
    "CriterionJunctionItem",
    "EvaluationVersionItem",
    "PromptItem",
    "PromptJunctionItem",
    "PromptSetVersionItem",
    "ScoringItem",
    "ScoringJunctionItem",
    "SequenceItem",
    "SequenceJunctionItem",
]


class _Item(BaseModel):
    # CMS editors add fields; they must not break reading. Missing required fields still fail.
    # Built on first use: a process that only reads a mirror never needs these (start-up).
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class PromptItem(_Item):
    id: DirectusId | None = None
    name: str
    text: str
    order_in_sequence: int | None = None
    status: Status
    guidance_notes: str | None = None
    expected_outcome_summary: str | None = None
    tags: Any = None
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None


class PromptJunctionItem(_Item):
    """A row of ``prompt_sequences_prompts``; ``prompts_id`` is None when not readable."""

    id: DirectusId | None = None
    prompts_id: PromptItem | None = None


class SequenceItem(_Item):
    id: DirectusId | None = None
    sequence_name: str
    sequence_description: str | None = None
    status: Status
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    prompts_in_sequence: list[PromptJunctionItem] = Field(default_factory=list)


class SequenceJunctionItem(_Item):
    """A row of ``prompt_set_versions_prompt_sequences``."""

    id: DirectusId | None = None
    prompt_sequences_id: SequenceItem | None = None


class _VersionItem(_Item):
    """The fields of a version row both kinds' collections have."""

    id: DirectusId
    version_number: int
    version_name: str | None = None
    status: Status
    description: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    published_at: datetime | None = None
    published_by: Any = None
    based_on_version_number: int | None = None


class PromptSetVersionItem(_VersionItem):
    sequences_in_set: list[SequenceJunctionItem] = Field(default_factory=list)


# -- the evaluation collections ----------------------------------------------------------


class CriterionItem(_Item):
    id: DirectusId | None = None
    name: str
    description: str | None = None
    scale: int
    criteria: str
    sort: int | None = None


class CriterionJunctionItem(_Item):
    """A row of ``evaluation_versions_evaluation_criteria``."""

    id: DirectusId | None = None
    evaluation_criteria_id: CriterionItem | None = None


class ScoringItem(_Item):
    id: DirectusId | None = None
    name: str | None = None
    guidelines: str
    sort: int | None = None


class ScoringJunctionItem(_Item):
    """A row of ``evaluation_versions_scoring``."""

    id: DirectusId | None = None
    scoring_id: ScoringItem | None = None


class EvaluationVersionItem(_VersionItem):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, defer_build=True)

    # storybench's Directus spells the field this way; either spelling is read.
    published_at: datetime | None = Field(
        None, validation_alias=AliasChoices("pubslihed_at", "published_at")
    )
    evaluation_criteria_in_version: list[CriterionJunctionItem] = Field(default_factory=list)
    scoring_in_version: list[ScoringJunctionItem] = Field(default_factory=list)
