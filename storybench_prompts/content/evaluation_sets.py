"""Evaluation sets (storybench's criteria): from Directus's tree to the structure its
evaluator reads, and their rules.

Criteria keep the junction order, keyed by their Directus name (a MongoDB key, so the same
name rules as sequence names); each has a description, an integer scale of at least 1 and
non-blank instructions; the name is title-cased for display; the scoring guidelines are the
first scoring item's (empty when there is none). The rules both kinds share are in ``rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._exceptions import InvalidPromptSetError, Problem
from .directus_items import EvaluationVersionItem
from .models import Criterion, EvaluationSet
from .rules import (
    check_key,
    check_text,
    checked,
    content_from_flat,
    join_path,
    label,
    parse_item,
)

__all__ = [
    "convert_evaluation_version",
    "evaluation_set_from_storybench",
    "parse_evaluation_version",
    "render_evaluation_set",
    "validate_evaluation_set",
]


_LABELS = {
    "evaluation_criteria_in_version": ("criterion", "evaluation_criteria_id", "name"),
    "scoring_in_version": ("scoring", "scoring_id", "name"),
}


def parse_evaluation_version(raw: object, *, context: str = "") -> EvaluationVersionItem:
    """Validate one item of ``/items/evaluation_versions`` with its nested tree."""
    parsed: EvaluationVersionItem = parse_item(EvaluationVersionItem, raw, context, _LABELS)
    return parsed


def _criterion_title(name: str) -> str:
    # storybench's evaluator shows "character_depth" as "Character Depth".
    return name.replace("_", " ").title()


def convert_evaluation_version(
    version: EvaluationVersionItem | Mapping[str, Any],
) -> EvaluationSet:
    """Directus's evaluation version to storybench's evaluation structure, with the rules."""
    if not isinstance(version, EvaluationVersionItem):
        version = parse_evaluation_version(version)
    context = f"evaluation version {version.version_number}"
    head = f"v{version.version_number}"
    problems: list[Problem] = []
    criteria: dict[str, Criterion] = {}
    labels: dict[str, str] = {}
    for index, junction in enumerate(version.evaluation_criteria_in_version):
        item = junction.evaluation_criteria_id
        if item is None:
            continue
        here = label("criterion", item.name, directus_id=item.id, position=index + 1)
        if item.name in criteria:
            problems.append(
                Problem(
                    join_path(head, here, "name"),
                    f"duplicate name in this set (also {labels[item.name]})",
                )
            )
            continue
        name_problem = check_key(item.name)
        if name_problem:
            problems.append(Problem(join_path(head, here, "name"), name_problem))
            continue
        labels[item.name] = here
        criteria[item.name] = Criterion(
            name=_criterion_title(item.name),
            description=item.description or "",
            scale=(1, item.scale),
            criteria=item.criteria,
        )
    scoring = next(
        (j.scoring_id for j in version.scoring_in_version if j.scoring_id is not None), None
    )
    if not criteria and not problems:
        problems.append(Problem(join_path(head, "evaluation_criteria_in_version"), "no criterion"))
    if problems:
        raise InvalidPromptSetError(problems, context=context)
    evaluation_set = EvaluationSet(
        version=version.version_number,
        version_name=version.version_name,
        directus_id=version.id,
        criteria=criteria,
        scoring_guidelines=scoring.guidelines if scoring is not None else "",
        created_at=version.date_created,
        updated_at=version.date_updated,
        published_at=version.published_at,
    )
    return checked(evaluation_set, validate_evaluation_set(evaluation_set), context=context)


def validate_evaluation_set(evaluation_set: EvaluationSet) -> list[Problem]:
    problems: list[Problem] = []
    head = f"v{evaluation_set.version}"
    if not evaluation_set.criteria:
        problems.append(Problem(join_path(head, "criteria"), "no criterion"))
    for key, criterion in evaluation_set.criteria.items():
        path = join_path(head, label("criterion", key))
        key_problem = check_key(key)
        if key_problem:
            problems.append(Problem(path, key_problem))
        check_text(problems, join_path(path, "name"), criterion.name)
        check_text(problems, join_path(path, "description"), criterion.description, blank_ok=True)
        check_text(problems, join_path(path, "criteria"), criterion.criteria)
        low, high = criterion.scale
        if low != 1 or high < 1:
            problems.append(
                Problem(join_path(path, "scale"), f"must be [1, N] with N >= 1, got {[low, high]}")
            )
    check_text(
        problems,
        join_path(head, "scoring_guidelines"),
        evaluation_set.scoring_guidelines,
        blank_ok=True,
    )
    return problems


def evaluation_set_from_storybench(data: Mapping[str, Any], *, context: str = "") -> EvaluationSet:
    """Build an :class:`EvaluationSet` from storybench's evaluation structure."""
    return content_from_flat(EvaluationSet, data, validate_evaluation_set, context=context)


def render_evaluation_set(evaluation_set: EvaluationSet) -> list[str]:
    """The criteria for a person to read: each with its scale and instructions, then the
    scoring guidelines."""
    lines: list[str] = []
    for key, criterion in evaluation_set.criteria.items():
        low, high = criterion.scale
        lines.append(f"\n{criterion.name} ({key}, scale {low}-{high})")
        if criterion.description:
            lines.append(f"  {criterion.description}")
        lines.append("  " + criterion.criteria.replace("\n", "\n  "))
    if evaluation_set.scoring_guidelines:
        lines.append(
            "\nScoring guidelines\n  " + evaluation_set.scoring_guidelines.replace("\n", "\n  ")
        )
    return lines
