"""From Directus's nested tree to storybench's flat :class:`PromptSet`, and the content rules.

Rules (documented in ``docs/architecture.md``):

* Only ``published`` sequences and prompts are kept; junction rows whose item is not readable
  (``null``) are skipped.
* Sequences keep the order of the set's junction rows, which is the order they were attached to
  the set and the order storybench iterates today.
* Prompts are ordered by ``order_in_sequence`` ascending; prompts without one come after all
  that have one; ties (and missing values) are broken by prompt name, which is unique within a
  sequence, so the result never depends on the order Directus returned the rows in.
* A kept set must have at least one sequence; each kept sequence at least one prompt; sequence
  names unique, non-empty, not starting with ``$`` and free of ``.`` (they become MongoDB keys);
  prompt names unique within their sequence and non-empty; prompt text not blank.

Every broken rule is collected and raised together as one :class:`InvalidPromptSetError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ._exceptions import InvalidPromptSetError, Problem
from ._models import DirectusPrompt, DirectusPromptSetVersion, Prompt, PromptSet, Status

__all__ = [
    "convert_version",
    "parse_version",
    "prompt_set_from_storybench",
    "validate_prompt_set",
]

# Junction hops are left out of problem paths: editors think in sets, sequences and prompts.
_JUNCTION_KEYS = frozenset({"prompt_sequences_id", "prompts_id"})


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


def parse_version(raw: object, *, context: str = "") -> DirectusPromptSetVersion:
    """Validate one item of ``/items/prompt_set_versions`` with its nested tree."""
    if not isinstance(raw, Mapping):
        raise InvalidPromptSetError(
            [Problem("", f"expected an object, got {type(raw).__name__}")], context=context
        )
    try:
        return DirectusPromptSetVersion.model_validate(raw)
    except ValidationError as exc:
        raise InvalidPromptSetError(problems_from_validation_error(exc), context=context) from None


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
        name_problem = _sequence_name_problem(seq.sequence_name)
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

        kept: list[tuple[int, DirectusPrompt]] = []
        seen_prompts: dict[str, int] = {}
        for p_index, p_junction in enumerate(seq.prompts_in_sequence):
            prompt = p_junction.prompts_id
            if prompt is None or prompt.status is not Status.PUBLISHED:
                continue
            p_path = f"{s_path}.prompts_in_sequence[{p_index}]"
            if not prompt.name.strip():
                problems.append(Problem(f"{p_path}.name", "empty"))
            elif prompt.name in seen_prompts:
                problems.append(
                    Problem(
                        f"{p_path}.name",
                        f"duplicate {prompt.name!r} in sequence {seq.sequence_name!r} "
                        f"(also prompts_in_sequence[{seen_prompts[prompt.name]}])",
                    )
                )
            else:
                seen_prompts[prompt.name] = p_index
            if not prompt.text.strip():
                problems.append(Problem(f"{p_path}.text", "empty"))
            kept.append((p_index, prompt))

        if not kept:
            problems.append(
                Problem(s_path, f"sequence {seq.sequence_name!r} has no published prompt")
            )
            continue
        ordered = sorted((p for _, p in kept), key=_prompt_key)
        if seq.sequence_name not in sequences:
            sequences[seq.sequence_name] = tuple(Prompt(name=p.name, text=p.text) for p in ordered)

    if not seen_sequences and not problems:
        problems.append(Problem("sequences_in_set", "no published sequence"))
    if problems:
        raise InvalidPromptSetError(problems, context=context)
    return PromptSet(
        version=version.version_number,
        version_name=version.version_name,
        directus_id=version.id,
        sequences=sequences,
        created_at=version.date_created,
        updated_at=version.date_updated,
    )


def _sequence_name_problem(name: str) -> str | None:
    if not name.strip():
        return "empty"
    if name.startswith("$") or "." in name:
        return f"{name!r} may not start with '$' or contain '.' (it is stored as a MongoDB key)"
    return None


def validate_prompt_set(prompt_set: PromptSet) -> list[Problem]:
    """The same content rules, checked on an already flat set (before every mirror write)."""
    problems: list[Problem] = []
    if not prompt_set.sequences:
        problems.append(Problem("sequences", "no sequence"))
    for name, prompts in prompt_set.sequences.items():
        s_path = f"sequences[{name!r}]"
        name_problem = _sequence_name_problem(name)
        if name_problem:
            problems.append(Problem(s_path, name_problem))
        if not prompts:
            problems.append(Problem(s_path, "no prompt"))
        seen: set[str] = set()
        for i, prompt in enumerate(prompts):
            if not prompt.name.strip():
                problems.append(Problem(f"{s_path}[{i}].name", "empty"))
            elif prompt.name in seen:
                problems.append(Problem(f"{s_path}[{i}].name", f"duplicate {prompt.name!r}"))
            seen.add(prompt.name)
            if not prompt.text.strip():
                problems.append(Problem(f"{s_path}[{i}].text", "empty"))
    return problems


def ensure_valid(prompt_set: PromptSet, *, context: str = "") -> PromptSet:
    problems = validate_prompt_set(prompt_set)
    if problems:
        raise InvalidPromptSetError(problems, context=context or f"version {prompt_set.version}")
    return prompt_set


def prompt_set_from_storybench(data: Mapping[str, Any], *, context: str = "") -> PromptSet:
    """Build a :class:`PromptSet` from storybench's flat format (or a mirror document)."""
    try:
        prompt_set = PromptSet.model_validate(
            {
                "version": data.get("version"),
                "version_name": data.get("version_name"),
                "directus_id": data.get("directus_id"),
                "sequences": data.get("sequences"),
                "created_at": data.get("created_at"),
                "updated_at": data.get("updated_at"),
            }
        )
    except ValidationError as exc:
        raise InvalidPromptSetError(problems_from_validation_error(exc), context=context) from None
    return ensure_valid(prompt_set, context=context)
