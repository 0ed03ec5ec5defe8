"""The kinds of content storybench reads from Directus, described as data.

Every fact that differs between prompt sets and evaluation sets lives on a
:class:`ContentKind`: its model, how Directus holds it (collections, the nested query), how it
becomes a checked set (converter, rules), where each mirror keeps it (MongoDB collection, file
names and the stable key inside a file), what the schema check expects, and how a person reads
it. The source, the mirrors, the cache, the checks and the CLI take a kind and are otherwise
the same code for every kind; nothing asks "which kind is this?". A third kind is a model, a
converter, rules and one more ``ContentKind`` (the tests define one); its ``diff`` is optional.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .._exceptions import InvalidPromptSetError, Problem
from .diff import (
    Change,
    SetDiff,
    describe_evaluation_change,
    describe_prompt_change,
    diff_evaluation_sets,
    diff_prompt_sets,
)
from .evaluation_sets import (
    convert_evaluation_version,
    evaluation_set_from_storybench,
    render_evaluation_set,
    validate_evaluation_set,
)
from .models import EvaluationSet, PromptSet, VersionedContent
from .prompt_sets import (
    convert_version,
    prompt_set_from_storybench,
    render_prompt_set,
    validate_prompt_set,
)
from .rules import common_problems
from .tracking import Nest, References, parents_of, references, subscription_fields

__all__ = [
    "EVALUATION_SETS",
    "KINDS",
    "PROMPT_SETS",
    "ContentKind",
    "SchemaExpectation",
    "ensure_valid",
    "kind_of",
    "validate_content",
]

C = TypeVar("C", bound=VersionedContent)


NESTED_LIMIT = 1_000_000
"""The ``_limit`` of every nested list. Not -1: Directus cuts -1 to its ``QUERY_LIMIT_MAX``
without saying so, and honours a number (a nested list is read whole either way)."""


def deep_limits(*paths: tuple[str, ...]) -> str:
    """``deep`` for every nested list: without it Directus cuts each at ``QUERY_LIMIT_DEFAULT``
    (100) items without saying so."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node["_limit"] = NESTED_LIMIT
    return json.dumps(tree, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SchemaExpectation:
    """The Directus fields a kind reads, per collection.

    ``required``: without them the content cannot be read or would be wrong (the nested
    query names them, or the converter needs them). ``optional``: read where they exist
    (names, descriptions, dates); a schema without them works. ``a|b`` means either spelling.
    """

    required: Mapping[str, tuple[str, ...]]
    optional: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContentKind(Generic[C]):
    """One kind of versioned content: where Directus keeps it and how it becomes a set."""

    name: str
    """Short identifier, e.g. ``prompts``; used in CLI flags, logs and events."""
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
    file_key: str
    """The member of a file mirror document holding the content. Stored on disk: never
    derived from wording that might change."""
    convert: Callable[[Mapping[str, Any]], C]
    """A raw Directus version item (with its nested tree) to a checked set."""
    from_storybench: Callable[..., C]
    """storybench's flat format (``context=`` names where it came from) to a checked set."""
    validate: Callable[[C], list[Problem]]
    """This kind's own rules on a flat set (the shared ones are added by :meth:`problems`)."""
    schema: SchemaExpectation
    """What the schema check expects of Directus for this kind."""
    render: Callable[[C], list[str]]
    """The set's content as lines for a person to read (after a common header)."""
    diff: Callable[[C, C], SetDiff] | None = None
    """What changed from one set of this kind to another (``diff_sets`` calls it); None: a
    kind that cannot be compared."""
    describe_change: Callable[[Change], str] | None = None
    """How one change of this kind's diff reads in a report (``render_diff``)."""
    lock_key: str | None = None
    """The key of this kind's set in a lockfile (``ops.lock``); None: a kind no lock names."""
    nesting: tuple[Nest, ...] = ()
    """The version's tree in Directus (junctions, items, nested): what maps a change event to
    the versions it touches (``content.tracking``). Empty: every change touches every version."""

    def __repr__(self) -> str:
        return f"ContentKind({self.name!r})"

    @property
    def title(self) -> str:
        """The noun at the start of a line: ``Prompt set``."""
        return self.noun[:1].upper() + self.noun[1:]

    def directus_keys(self, raw: Mapping[str, Any]) -> References:
        """The keys of every row a raw version item (with its tree) was read from."""
        return references(raw, self.collection, self.nesting)

    def subscription_fields(self) -> dict[str, list[str]]:
        """Per collection, the fields a realtime subscription asks for."""
        fields = subscription_fields(self.collection, self.nesting)
        return {c: fields.get(c, ["id"]) for c in self.related_collections}

    def parents(self) -> dict[str, tuple[str, str]]:
        """Junction collection -> (its parent's field, the parent's collection)."""
        return parents_of(self.collection, self.nesting)

    def problems(self, content: C) -> list[Problem]:
        """Every rule ``content`` breaks: this kind's and the shared ones."""
        return common_problems(content, self.validate(content))

    def ensure_valid(self, content: C, *, context: str = "") -> C:
        """``content``, or :class:`InvalidPromptSetError` listing every rule it breaks."""
        if not isinstance(content, self.model):
            raise TypeError(f"a {self.noun} was expected, not {type(content).__name__}")
        problems = self.problems(content)
        if problems:
            raise InvalidPromptSetError(problems, context=context or f"version {content.version}")
        return content


_DATES = ("date_created", "date_updated")

_PROMPT_SCHEMA = SchemaExpectation(
    required={
        "prompt_set_versions": ("id", "version_number", "status", "sequences_in_set"),
        "prompt_set_versions_prompt_sequences": (
            "id",
            "prompt_set_versions_id",
            "prompt_sequences_id",
        ),
        "prompt_sequences": ("id", "sequence_name", "status", "prompts_in_sequence"),
        "prompt_sequences_prompts": ("id", "prompt_sequences_id", "prompts_id"),
        # Without order_in_sequence, prompts could only be ordered by name: the wrong order.
        "prompts": ("id", "name", "text", "status", "order_in_sequence"),
    },
    optional={
        "prompt_set_versions": (
            "version_name",
            "description",
            *_DATES,
            "published_at",
            "published_by",
            "based_on_version_number",
        ),
        "prompt_sequences": ("sequence_description", "sort", *_DATES),
        "prompts": (
            "guidance_notes",
            "expected_outcome_summary",
            "tags",
            "sort",
            *_DATES,
        ),
    },
)  # fmt: skip

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
    nested_deep=deep_limits(
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
    file_key="prompt_set",
    convert=convert_version,
    from_storybench=prompt_set_from_storybench,
    validate=validate_prompt_set,
    schema=_PROMPT_SCHEMA,
    render=render_prompt_set,
    diff=diff_prompt_sets,
    describe_change=describe_prompt_change,
    lock_key="prompt_set",
    nesting=(
        Nest(
            field="sequences_in_set",
            junction="prompt_set_versions_prompt_sequences",
            parent_field="prompt_set_versions_id",
            item_field="prompt_sequences_id",
            collection="prompt_sequences",
            children=(
                Nest(
                    field="prompts_in_sequence",
                    junction="prompt_sequences_prompts",
                    parent_field="prompt_sequences_id",
                    item_field="prompts_id",
                    collection="prompts",
                ),
            ),
        ),
    ),
)

_EVALUATION_SCHEMA = SchemaExpectation(
    required={
        "evaluation_versions": (
            "id",
            "version_number",
            "status",
            "evaluation_criteria_in_version",
            "scoring_in_version",
        ),
        "evaluation_versions_evaluation_criteria": (
            "id",
            "evaluation_versions_id",
            "evaluation_criteria_id",
        ),
        "evaluation_criteria": ("id", "name", "scale", "criteria"),
        "evaluation_versions_scoring": ("id", "evaluation_versions_id", "scoring_id"),
        "scoring": ("id", "guidelines"),
    },
    optional={
        "evaluation_versions": (
            "version_name",
            "description",
            *_DATES,
            "pubslihed_at|published_at",
            "published_by",
            "based_on_version_number",
        ),
        "evaluation_criteria": ("description", "sort", *_DATES),
        "scoring": ("name", "sort", *_DATES),
    },
)  # fmt: skip

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
    nested_deep=deep_limits(("evaluation_criteria_in_version",), ("scoring_in_version",)),
    related_collections=(
        "evaluation_versions",
        "evaluation_versions_evaluation_criteria",
        "evaluation_criteria",
        "evaluation_versions_scoring",
        "scoring",
    ),
    mongo_collection="evaluation_criteria",
    file_prefix="evaluation-set",
    file_key="evaluation_set",
    convert=convert_evaluation_version,
    from_storybench=evaluation_set_from_storybench,
    validate=validate_evaluation_set,
    schema=_EVALUATION_SCHEMA,
    render=render_evaluation_set,
    diff=diff_evaluation_sets,
    describe_change=describe_evaluation_change,
    lock_key="evaluation_set",
    nesting=(
        Nest(
            field="evaluation_criteria_in_version",
            junction="evaluation_versions_evaluation_criteria",
            parent_field="evaluation_versions_id",
            item_field="evaluation_criteria_id",
            collection="evaluation_criteria",
        ),
        Nest(
            field="scoring_in_version",
            junction="evaluation_versions_scoring",
            parent_field="evaluation_versions_id",
            item_field="scoring_id",
            collection="scoring",
        ),
    ),
)

KINDS: dict[str, ContentKind[Any]] = {k.name: k for k in (PROMPT_SETS, EVALUATION_SETS)}
"""The kinds this package serves, by name (CLI flags, settings)."""

_BY_MODEL: dict[type[Any], ContentKind[Any]] = {k.model: k for k in KINDS.values()}


def kind_of(content: VersionedContent) -> ContentKind[Any]:
    """The kind whose model ``content`` is (a lookup by type, subclasses included)."""
    for model in type(content).__mro__:
        kind = _BY_MODEL.get(model)
        if kind is not None:
            return kind
    raise TypeError(f"no content kind for {type(content).__name__}")


def validate_content(content: VersionedContent) -> list[Problem]:
    """Every rule the content's kind has, plus the ones both kinds share."""
    return kind_of(content).problems(content)


def ensure_valid(content: C, *, context: str = "") -> C:
    """``content``, or :class:`InvalidPromptSetError` listing every rule it breaks."""
    kind: ContentKind[C] = kind_of(content)
    return kind.ensure_valid(content, context=context)
