"""storybench's models, by its field names: what the drop-in ``DirectusClient`` returns.

Served objects are shared by every caller (a warm call returns the very object it returned
before), so they are frozen and their lists are tuples: one caller cannot change what the next
one reads. ``model_dump(mode="json")`` gives lists, as storybench's own models do. These are
also the package's exported ``DirectusPromptSetVersion``, ``DirectusPrompt`` and the others:
the class a caller checks with ``isinstance`` is the class the drop-in returns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr

from ...content.kinds import EVALUATION_SETS, PROMPT_SETS, ContentKind
from ...content.models import (
    DirectusId,
    EvaluationSet,
    PromptSet,
    ReadOnlyMapping,
    Status,
    VersionedContent,
)

__all__ = [
    "CriterionInVersion",
    "DirectusEvaluationCriterion",
    "DirectusEvaluationVersion",
    "DirectusPrompt",
    "DirectusPromptSequence",
    "DirectusPromptSetVersion",
    "DirectusScoring",
    "PromptInSequence",
    "PublicationStatus",
    "ScoringInVersion",
    "SequenceInSet",
    "StorybenchEvaluationCriterion",
    "StorybenchEvaluationStructure",
    "StorybenchPromptConfig",
    "StorybenchPromptsStructure",
    "linked",
]

PublicationStatus = Status
"""storybench's name for the publication status (``draft``, ``published``, ``archived``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)

    def __eq__(self, other: object) -> bool:
        # Fields only: the private attributes are links to the served set (with its
        # provenance), which must not make equal content compare unequal.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__


class DirectusPrompt(_Frozen):
    """A prompt as storybench's model names its fields."""

    id: DirectusId | None = None
    name: str
    text: str
    status: PublicationStatus
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None
    guidance_notes: str | None = None
    expected_outcome_summary: str | None = None
    tags: Any = None
    order_in_sequence: int | None = None
    prompt_sequence: int | None = None


class PromptInSequence(_Frozen):
    prompts_id: DirectusPrompt


class DirectusPromptSequence(_Frozen):
    id: DirectusId | None = None
    sequence_name: str
    sequence_description: str | None = None
    status: PublicationStatus
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None
    prompts_in_sequence: tuple[PromptInSequence, ...] | None = None


class SequenceInSet(_Frozen):
    prompt_sequences_id: DirectusPromptSequence


class _VersionFields(_Frozen):
    """The fields storybench's prompt set and evaluation versions share, in its order."""

    id: DirectusId | None = None
    version_number: int
    version_name: str | None = None
    description: str | None = None
    status: PublicationStatus
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None
    published_at: datetime | None = None
    published_by: Any = None
    based_on_version_number: int | None = None


class DirectusPromptSetVersion(_VersionFields):
    """A prompt set version as storybench's model names its fields.

    Built from the set this library serves, so it holds only published sequences and prompts,
    prompts in ``order_in_sequence`` order (``order_in_sequence`` is the 1-based position), and
    no item ids, descriptions, tags or notes of sequences and prompts (those are None).
    """

    sequences_in_set: tuple[SequenceInSet, ...] | None = None
    prompt_sequences: tuple[DirectusPromptSequence, ...] | None = None

    _served: PromptSet | None = PrivateAttr(default=None)
    _structure: StorybenchPromptsStructure | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)


class StorybenchPromptConfig(_Frozen):
    name: str
    text: str


class StorybenchPromptsStructure(_Frozen):
    """What ``fetch_prompts`` returns: storybench's flat prompt set.

    ``created_at`` is never None: the version's ``date_created``, else when the content was read
    from its origin. :attr:`config_hash` is storybench's hash of these prompts.
    """

    sequences: ReadOnlyMapping[str, tuple[StorybenchPromptConfig, ...]]
    version: int
    directus_id: DirectusId | None = None
    created_at: datetime
    updated_at: datetime | None = None

    _content: PromptSet | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)

    @property
    def config_hash(self) -> str:
        """storybench's ``config_hash`` of these prompts (what its evaluations record)."""
        return _config_hash(self, PROMPT_SETS)


DirectusPromptSetVersion.model_rebuild()


class DirectusEvaluationCriterion(_Frozen):
    """An evaluation criterion as storybench's model names its fields."""

    id: DirectusId | None = None
    name: str
    description: str | None = None
    scale: int
    criteria: str
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None


class DirectusScoring(_Frozen):
    id: DirectusId | None = None
    name: str | None = None
    guidelines: str
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None


class CriterionInVersion(_Frozen):
    evaluation_criteria_id: DirectusEvaluationCriterion


class ScoringInVersion(_Frozen):
    scoring_id: DirectusScoring


class DirectusEvaluationVersion(_VersionFields):
    """An evaluation version as storybench's model names its fields.

    Built from the set this library serves: criteria in the version's order, keyed by their
    Directus name, ``sort`` their 1-based position, no item ids or dates of criteria; at most
    one scoring item, holding the guidelines storybench reads (none when they are empty).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    # storybench's Directus spells the field ``pubslihed_at``; either spelling is read.
    published_at: datetime | None = Field(
        None, validation_alias=AliasChoices("published_at", "pubslihed_at")
    )
    evaluation_criteria_in_version: tuple[CriterionInVersion, ...] | None = None
    scoring_in_version: tuple[ScoringInVersion, ...] | None = None
    evaluation_criteria: tuple[DirectusEvaluationCriterion, ...] | None = None
    scoring: tuple[DirectusScoring, ...] | None = None

    _served: EvaluationSet | None = PrivateAttr(default=None)
    _structure: StorybenchEvaluationStructure | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)


class StorybenchEvaluationCriterion(_Frozen):
    name: str
    """Title-cased for display: ``character_depth`` is ``Character Depth``."""
    description: str
    scale: tuple[int, int]
    """``(1, maximum)``; storybench's evaluator reads ``scale[0]`` and ``scale[1]``."""
    criteria: str


class StorybenchEvaluationStructure(_Frozen):
    """What ``convert_to_storybench_evaluation_format`` returns: storybench's criteria.

    ``created_at`` is the version's ``date_created`` (storybench stamps the conversion time).
    """

    criteria: ReadOnlyMapping[str, StorybenchEvaluationCriterion]
    scoring_guidelines: str
    version: int
    version_name: str | None = None
    directus_id: DirectusId | None = None
    created_at: datetime
    updated_at: datetime | None = None

    _content: EvaluationSet | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)

    @property
    def config_hash(self) -> str:
        """The hash of these criteria, computed as storybench's ``config_hash`` is."""
        return _config_hash(self, EVALUATION_SETS)


DirectusEvaluationVersion.model_rebuild()


def _config_hash(structure: Any, kind: ContentKind[Any]) -> str:
    """The served set's hash when ``structure`` is the very object built from it; otherwise
    computed from the structure's own fields."""
    if structure._content is not None and linked(structure):
        return str(structure._content.config_hash)
    rebuilt: VersionedContent = kind.from_storybench(structure.model_dump(mode="json"))
    return rebuilt.config_hash


def linked(model: Any) -> bool:
    """Whether ``model`` is the very object its private link to the served set was made for:
    a copy (``model_copy(update=...)``, ``deepcopy``) carries the link but may differ, so it is
    converted from its own fields."""
    return bool(model._linked_to == id(model))
