"""From Directus's nested trees to the flat sets storybench runs, and the content rules.

Prompt sets (documented in ``docs/architecture.md``):

* Only ``published`` sequences and prompts are kept; junction rows whose item is not readable
  (``null``) are skipped. A published sequence left with no published prompt is left out, with
  a warning, as storybench's own client does.
* Sequences keep the order of the set's junction rows, which is the order they were attached to
  the set and the order storybench iterates today.
* Prompts are ordered by ``order_in_sequence`` ascending; prompts without one come after all
  that have one; ties (and missing values) are broken by prompt name, which is unique within a
  sequence, so the result never depends on the order Directus returned the rows in.
* A kept set must have at least one sequence; sequence names unique, non-empty, not starting
  with ``$`` and free of ``.`` (they become MongoDB keys); prompt names unique within their
  sequence and non-empty; prompt text not blank.

Evaluation sets: criteria keep the junction order, keyed by their Directus name (a MongoDB key,
so the same name rules); each has a description, an integer scale of at least 1 and non-blank
instructions; the scoring guidelines are the first scoring item's (empty when there is none).

Both kinds: every string must be storable and readable back exactly by both mirrors, so no lone
surrogate anywhere and no NUL character in a name that becomes a key, and the whole set at most
:data:`MAX_CONTENT_BYTES` of JSON (a MongoDB document holds 16 MiB).

Every broken rule is collected and raised together as one :class:`InvalidPromptSetError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from .._exceptions import InvalidPromptSetError, Problem
from .models import (
    Criterion,
    DirectusEvaluationVersion,
    DirectusPrompt,
    DirectusPromptSetVersion,
    EvaluationSet,
    Prompt,
    PromptSet,
    Status,
    VersionedContent,
)

__all__ = [
    "MAX_CONTENT_BYTES",
    "content_from_storybench",
    "convert_evaluation_version",
    "convert_version",
    "ensure_valid",
    "evaluation_set_from_storybench",
    "parse_evaluation_version",
    "parse_version",
    "prompt_set_from_storybench",
    "validate_content",
    "validate_prompt_set",
]

logger = logging.getLogger(__name__)

# MongoDB refuses documents over 16 MiB; the mirror document holds the content once plus a
# few hundred bytes of metadata. JSON's escapes make this a generous bound on the BSON size.
MAX_CONTENT_BYTES = 12 * 1024 * 1024

C = TypeVar("C", bound=VersionedContent)

# Junction hops are left out of problem paths: editors think in sets, sequences and prompts.
_JUNCTION_KEYS = frozenset(
    {"prompt_sequences_id", "prompts_id", "evaluation_criteria_id", "scoring_id"}
)


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if part in _JUNCTION_KEYS:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        path = _path(err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        problems.append(Problem(path, err["msg"].lower()))
    return problems


def _parse(model: type[Any], raw: object, context: str) -> Any:
    if not isinstance(raw, Mapping):
        raise InvalidPromptSetError(
            [Problem("", f"expected an object, got {type(raw).__name__}")], context=context
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidPromptSetError(problems_from_validation_error(exc), context=context) from None


def parse_version(raw: object, *, context: str = "") -> DirectusPromptSetVersion:
    """Validate one item of ``/items/prompt_set_versions`` with its nested tree."""
    parsed: DirectusPromptSetVersion = _parse(DirectusPromptSetVersion, raw, context)
    return parsed


def parse_evaluation_version(raw: object, *, context: str = "") -> DirectusEvaluationVersion:
    """Validate one item of ``/items/evaluation_versions`` with its nested tree."""
    parsed: DirectusEvaluationVersion = _parse(DirectusEvaluationVersion, raw, context)
    return parsed


# -- rules shared by both kinds -------------------------------------------------------------


def _text_problem(value: str) -> str | None:
    """Why a string cannot be stored and read back exactly by both mirrors, if it cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def _key_problem(name: str) -> str | None:
    """Rules for a name that becomes a MongoDB key (sequence names, criterion keys)."""
    if not name.strip():
        return "empty"
    if "\x00" in name:
        return "contains a NUL character (MongoDB keys cannot)"
    text = _text_problem(name)
    if text:
        return text
    if name.startswith("$") or "." in name:
        return f"{name!r} may not start with '$' or contain '.' (it is stored as a MongoDB key)"
    return None


def _check_text(problems: list[Problem], path: str, value: str, *, blank_ok: bool = False) -> None:
    if not blank_ok and not value.strip():
        problems.append(Problem(path, "empty"))
        return
    text = _text_problem(value)
    if text:
        problems.append(Problem(path, text))


def _size_problem(content: VersionedContent) -> Problem | None:
    size = len(json.dumps(content.body(), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > MAX_CONTENT_BYTES:
        return Problem(
            "",
            f"{size} bytes of content, over the {MAX_CONTENT_BYTES}-byte limit a mirror "
            "document can hold",
        )
    return None


# -- prompt sets ----------------------------------------------------------------------------


def _prompt_key(p: DirectusPrompt) -> tuple[bool, int, str]:
    return (p.order_in_sequence is None, p.order_in_sequence or 0, p.name)


def convert_version(version: DirectusPromptSetVersion | Mapping[str, Any]) -> PromptSet:
    """Apply the rules above; raise :class:`InvalidPromptSetError` listing every problem."""
    if not isinstance(version, DirectusPromptSetVersion):
        version = parse_version(version)
    context = f"version {version.version_number}"
    problems: list[Problem] = []
    sequences: dict[str, tuple[Prompt, ...]] = {}
    seen_sequences: dict[str, int] = {}

    for s_index, s_junction in enumerate(version.sequences_in_set):
        seq = s_junction.prompt_sequences_id
        if seq is None or seq.status is not Status.PUBLISHED:
            continue
        s_path = f"sequences_in_set[{s_index}]"
        kept: list[DirectusPrompt] = []
        seen_prompts: dict[str, int] = {}
        for p_index, p_junction in enumerate(seq.prompts_in_sequence):
            prompt = p_junction.prompts_id
            if prompt is None or prompt.status is not Status.PUBLISHED:
                continue
            p_path = f"{s_path}.prompts_in_sequence[{p_index}]"
            if prompt.name in seen_prompts:
                problems.append(
                    Problem(
                        f"{p_path}.name",
                        f"duplicate {prompt.name!r} in sequence {seq.sequence_name!r} "
                        f"(also prompts_in_sequence[{seen_prompts[prompt.name]}])",
                    )
                )
            else:
                _check_text(problems, f"{p_path}.name", prompt.name)
                seen_prompts[prompt.name] = p_index
            _check_text(problems, f"{p_path}.text", prompt.text)
            kept.append(prompt)

        if not kept:
            # storybench's own client leaves such a sequence out; so do we, but say so.
            logger.warning(
                "%s: sequence %r has no published prompt; left out",
                context,
                seq.sequence_name,
            )
            continue
        name_problem = _key_problem(seq.sequence_name)
        if name_problem:
            problems.append(Problem(f"{s_path}.sequence_name", name_problem))
        elif seq.sequence_name in seen_sequences:
            first = seen_sequences[seq.sequence_name]
            problems.append(
                Problem(
                    f"{s_path}.sequence_name",
                    f"duplicate {seq.sequence_name!r} (also sequences_in_set[{first}])",
                )
            )
        else:
            seen_sequences[seq.sequence_name] = s_index
            ordered = sorted(kept, key=_prompt_key)
            sequences[seq.sequence_name] = tuple(Prompt(name=p.name, text=p.text) for p in ordered)

    if not sequences and not problems:
        problems.append(
            Problem("sequences_in_set", "no published sequence with a published prompt")
        )
    if problems:
        raise InvalidPromptSetError(problems, context=context)
    prompt_set = PromptSet(
        version=version.version_number,
        version_name=version.version_name,
        directus_id=version.id,
        sequences=sequences,
        created_at=version.date_created,
        updated_at=version.date_updated,
    )
    return ensure_valid(prompt_set, context=context)


def validate_prompt_set(prompt_set: PromptSet) -> list[Problem]:
    """The same content rules, checked on an already flat set (before every mirror write)."""
    problems: list[Problem] = []
    if not prompt_set.sequences:
        problems.append(Problem("sequences", "no sequence"))
    for name, prompts in prompt_set.sequences.items():
        s_path = f"sequences[{name!r}]"
        name_problem = _key_problem(name)
        if name_problem:
            problems.append(Problem(s_path, name_problem))
        if not prompts:
            problems.append(Problem(s_path, "no prompt"))
        seen: set[str] = set()
        for i, prompt in enumerate(prompts):
            if prompt.name in seen:
                problems.append(Problem(f"{s_path}[{i}].name", f"duplicate {prompt.name!r}"))
            else:
                _check_text(problems, f"{s_path}[{i}].name", prompt.name)
            seen.add(prompt.name)
            _check_text(problems, f"{s_path}[{i}].text", prompt.text)
    return problems


# -- evaluation sets ------------------------------------------------------------------------


def _criterion_title(name: str) -> str:
    # storybench's evaluator shows "character_depth" as "Character Depth".
    return name.replace("_", " ").title()


def convert_evaluation_version(
    version: DirectusEvaluationVersion | Mapping[str, Any],
) -> EvaluationSet:
    """Directus's evaluation version to storybench's evaluation structure, with the rules."""
    if not isinstance(version, DirectusEvaluationVersion):
        version = parse_evaluation_version(version)
    context = f"evaluation version {version.version_number}"
    problems: list[Problem] = []
    criteria: dict[str, Criterion] = {}
    for index, junction in enumerate(version.evaluation_criteria_in_version):
        item = junction.evaluation_criteria_id
        if item is None:
            continue
        path = f"evaluation_criteria_in_version[{index}]"
        if item.name in criteria:
            problems.append(Problem(f"{path}.name", f"duplicate {item.name!r}"))
            continue
        name_problem = _key_problem(item.name)
        if name_problem:
            problems.append(Problem(f"{path}.name", name_problem))
            continue
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
        problems.append(Problem("evaluation_criteria_in_version", "no criterion"))
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
    )
    return ensure_valid(evaluation_set, context=context)


def validate_evaluation_set(evaluation_set: EvaluationSet) -> list[Problem]:
    problems: list[Problem] = []
    if not evaluation_set.criteria:
        problems.append(Problem("criteria", "no criterion"))
    for key, criterion in evaluation_set.criteria.items():
        path = f"criteria[{key!r}]"
        key_problem = _key_problem(key)
        if key_problem:
            problems.append(Problem(path, key_problem))
        _check_text(problems, f"{path}.name", criterion.name)
        _check_text(problems, f"{path}.description", criterion.description, blank_ok=True)
        _check_text(problems, f"{path}.criteria", criterion.criteria)
        low, high = criterion.scale
        if low != 1 or high < 1:
            problems.append(
                Problem(f"{path}.scale", f"must be [1, N] with N >= 1, got {[low, high]}")
            )
    _check_text(problems, "scoring_guidelines", evaluation_set.scoring_guidelines, blank_ok=True)
    return problems


# -- either kind ----------------------------------------------------------------------------


def validate_content(content: VersionedContent) -> list[Problem]:
    """Every rule the content's kind has, plus the ones both kinds share."""
    if isinstance(content, PromptSet):
        problems = validate_prompt_set(content)
    elif isinstance(content, EvaluationSet):
        problems = validate_evaluation_set(content)
    else:
        raise TypeError(f"no content rules for {type(content).__name__}")
    if content.version_name is not None:
        _check_text(problems, "version_name", content.version_name, blank_ok=True)
    if isinstance(content.directus_id, str):
        _check_text(problems, "directus_id", content.directus_id)
    if not problems:
        size = _size_problem(content)
        if size:
            problems.append(size)
    return problems


def ensure_valid(content: C, *, context: str = "") -> C:
    problems = validate_content(content)
    if problems:
        raise InvalidPromptSetError(problems, context=context or f"version {content.version}")
    return content


def content_from_storybench(
    content_type: type[C], data: Mapping[str, Any], *, context: str = ""
) -> C:
    """Build a set of ``content_type`` from storybench's flat format (or a mirror document)."""
    fields = {
        name: data.get(name)
        for name in content_type.model_fields
        if name != "provenance" and name in data
    }
    try:
        content = content_type.model_validate(fields)
    except ValidationError as exc:
        raise InvalidPromptSetError(problems_from_validation_error(exc), context=context) from None
    return ensure_valid(content, context=context)


def prompt_set_from_storybench(data: Mapping[str, Any], *, context: str = "") -> PromptSet:
    """Build a :class:`PromptSet` from storybench's flat format (or a mirror document)."""
    return content_from_storybench(PromptSet, data, context=context)


def evaluation_set_from_storybench(data: Mapping[str, Any], *, context: str = "") -> EvaluationSet:
    """Build an :class:`EvaluationSet` from storybench's evaluation structure."""
    return content_from_storybench(EvaluationSet, data, context=context)
