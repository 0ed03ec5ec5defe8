"""The kinds of content storybench reads from Directus, described as data.

A kind is what the rest of the library needs to know to fetch, check, cache and mirror one
sort of versioned set: its model, its converter, and a few Directus queries. The cache, the
mirrors and the Directus source take a kind and are otherwise the same code for every kind;
adding a third kind means a model, a converter and one more :class:`ContentKind`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .convert import (
    convert_evaluation_version,
    convert_version,
    evaluation_set_from_storybench,
    prompt_set_from_storybench,
)
from .models import EvaluationSet, PromptSet, VersionedContent

__all__ = ["EVALUATION_SETS", "KINDS", "PROMPT_SETS", "ContentKind"]

C = TypeVar("C", bound=VersionedContent)


def _deep(*paths: tuple[str, ...]) -> str:
    """``deep`` for every nested list: Directus cuts each at 100 items without saying so."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node["_limit"] = -1
    return json.dumps(tree, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ContentKind(Generic[C]):
    """One kind of versioned content: where Directus keeps it and how it becomes a set."""

    name: str
    """Short identifier, e.g. ``prompts``; used in CLI flags, logs and file names."""
    noun: str
    """What one set is called in messages, e.g. ``prompt set``."""
    model: type[C]
    collection: str
    """The Directus collection of versions."""
    nested_fields: str
    nested_deep: str
    related_collections: tuple[str, ...]
    """Every Directus collection the content is read from (junctions included)."""
    mongo_collection: str
    """storybench's MongoDB collection for this kind."""
    file_prefix: str
    """File mirror snapshots are ``<file_prefix>-v<N>.json``."""
    convert: Callable[[Mapping[str, Any]], C]
    """A raw Directus version item (with its nested tree) to a checked set."""
    from_storybench: Callable[..., C]
    """storybench's flat format (``context=`` names where it came from) to a checked set."""

    def __repr__(self) -> str:
        return f"ContentKind({self.name!r})"


PROMPT_SETS: ContentKind[PromptSet] = ContentKind(
    name="prompts",
    noun="prompt set",
    model=PromptSet,
    collection="prompt_set_versions",
    nested_fields=",".join(
        [
            "*",
            "sequences_in_set.id",
            "sequences_in_set.prompt_sequences_id.*",
            "sequences_in_set.prompt_sequences_id.prompts_in_sequence.id",
            "sequences_in_set.prompt_sequences_id.prompts_in_sequence.prompts_id.*",
        ]
    ),
    nested_deep=_deep(
        ("sequences_in_set",),
        ("sequences_in_set", "prompt_sequences_id", "prompts_in_sequence"),
    ),
    related_collections=(
        "prompt_set_versions",
        "prompt_set_versions_prompt_sequences",
        "prompt_sequences",
        "prompt_sequences_prompts",
        "prompts",
    ),
    mongo_collection="prompts",
    file_prefix="prompt-set",
    convert=convert_version,
    from_storybench=prompt_set_from_storybench,
)

EVALUATION_SETS: ContentKind[EvaluationSet] = ContentKind(
    name="evaluations",
    noun="evaluation set",
    model=EvaluationSet,
    collection="evaluation_versions",
    nested_fields=",".join(
        [
            "*",
            "evaluation_criteria_in_version.id",
            "evaluation_criteria_in_version.evaluation_criteria_id.*",
            "scoring_in_version.id",
            "scoring_in_version.scoring_id.*",
        ]
    ),
    nested_deep=_deep(("evaluation_criteria_in_version",), ("scoring_in_version",)),
    related_collections=(
        "evaluation_versions",
        "evaluation_versions_evaluation_criteria",
        "evaluation_criteria",
        "evaluation_versions_scoring",
        "scoring",
    ),
    mongo_collection="evaluation_criteria",
    file_prefix="evaluation-set",
    convert=convert_evaluation_version,
    from_storybench=evaluation_set_from_storybench,
)

KINDS: dict[str, ContentKind[Any]] = {k.name: k for k in (PROMPT_SETS, EVALUATION_SETS)}
