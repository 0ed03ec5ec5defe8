"""Prompt sets: from Directus's nested tree to the flat set storybench runs, and its rules.

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
  sequence and non-empty; prompt text not blank. The rules both kinds share are in ``rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._exceptions import InvalidPromptSetError, Problem
from .._logs import get_logger
from .directus_items import PromptItem, PromptSetVersionItem
from .models import Prompt, PromptSet, Status
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
    "convert_version",
    "parse_version",
    "prompt_set_from_storybench",
    "render_prompt_set",
    "validate_prompt_set",
]

logger = get_logger("storybench_prompts.content")


_LABELS = {
    "sequences_in_set": ("sequence", "prompt_sequences_id", "sequence_name"),
    "prompts_in_sequence": ("prompt", "prompts_id", "name"),
}


def parse_version(raw: object, *, context: str = "") -> PromptSetVersionItem:
    """Validate one item of ``/items/prompt_set_versions`` with its nested tree."""
    parsed: PromptSetVersionItem = parse_item(PromptSetVersionItem, raw, context, _LABELS)
    return parsed


def _prompt_key(p: PromptItem) -> tuple[bool, int, str]:
    return (p.order_in_sequence is None, p.order_in_sequence or 0, p.name)


def convert_version(version: PromptSetVersionItem | Mapping[str, Any]) -> PromptSet:
    """Apply the rules above; raise :class:`InvalidPromptSetError` listing every problem.

    Each problem's path names what an editor finds in Directus: the version, the sequence
    and the prompt by name and id, e.g. ``v2 > sequence "FilmNarrative" (id 3) > prompt
    "Visual Realization" (id 40) > text``.
    """
    if not isinstance(version, PromptSetVersionItem):
        version = parse_version(version)
    context = f"version {version.version_number}"
    head = f"v{version.version_number}"
    problems: list[Problem] = []
    sequences: dict[str, tuple[Prompt, ...]] = {}
    seen_sequences: dict[str, str] = {}

    for s_index, s_junction in enumerate(version.sequences_in_set):
        seq = s_junction.prompt_sequences_id
        if seq is None or seq.status is not Status.PUBLISHED:
            continue
        s_label = label("sequence", seq.sequence_name, directus_id=seq.id, position=s_index + 1)
        kept: list[PromptItem] = []
        seen_prompts: dict[str, str] = {}
        for p_index, p_junction in enumerate(seq.prompts_in_sequence):
            prompt = p_junction.prompts_id
            if prompt is None or prompt.status is not Status.PUBLISHED:
                continue
            p_label = label("prompt", prompt.name, directus_id=prompt.id, position=p_index + 1)
            if prompt.name in seen_prompts:
                problems.append(
                    Problem(
                        join_path(head, s_label, p_label, "name"),
                        f"duplicate name in this sequence (also {seen_prompts[prompt.name]})",
                    )
                )
            else:
                check_text(problems, join_path(head, s_label, p_label, "name"), prompt.name)
                seen_prompts[prompt.name] = p_label
            check_text(problems, join_path(head, s_label, p_label, "text"), prompt.text)
            kept.append(prompt)

        if not kept:
            # storybench's own client leaves such a sequence out; so do we, but say so.
            logger.warning(
                "%s: sequence %r has no published prompt; left out",
                context,
                seq.sequence_name,
            )
            continue
        name_problem = check_key(seq.sequence_name)
        if name_problem:
            problems.append(Problem(join_path(head, s_label, "sequence_name"), name_problem))
        elif seq.sequence_name in seen_sequences:
            first = seen_sequences[seq.sequence_name]
            problems.append(
                Problem(
                    join_path(head, s_label, "sequence_name"),
                    f"duplicate name in this set (also {first})",
                )
            )
        else:
            seen_sequences[seq.sequence_name] = s_label
            ordered = sorted(kept, key=_prompt_key)
            sequences[seq.sequence_name] = tuple(Prompt(name=p.name, text=p.text) for p in ordered)

    if not sequences and not problems:
        problems.append(
            Problem(
                join_path(head, "sequences_in_set"), "no published sequence with a published prompt"
            )
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
        published_at=version.published_at,
    )
    return checked(prompt_set, validate_prompt_set(prompt_set), context=context)


def validate_prompt_set(prompt_set: PromptSet) -> list[Problem]:
    """The same content rules, checked on an already flat set (before every mirror write).

    Flat sets carry no Directus ids: prompts are named by name and position.
    """
    problems: list[Problem] = []
    head = f"v{prompt_set.version}"
    if not prompt_set.sequences:
        problems.append(Problem(join_path(head, "sequences"), "no sequence"))
    for name, prompts in prompt_set.sequences.items():
        s_label = label("sequence", name)
        name_problem = check_key(name)
        if name_problem:
            problems.append(Problem(join_path(head, s_label), name_problem))
        if not prompts:
            problems.append(Problem(join_path(head, s_label), "no prompt"))
        seen: dict[str, int] = {}
        for i, prompt in enumerate(prompts):
            p_label = label("prompt", prompt.name, position=i + 1)
            if prompt.name in seen:
                problems.append(
                    Problem(
                        join_path(head, s_label, p_label, "name"),
                        f"duplicate name in this sequence (also position {seen[prompt.name]})",
                    )
                )
            else:
                check_text(problems, join_path(head, s_label, p_label, "name"), prompt.name)
                seen[prompt.name] = i + 1
            check_text(problems, join_path(head, s_label, p_label, "text"), prompt.text)
    return problems


def prompt_set_from_storybench(data: Mapping[str, Any], *, context: str = "") -> PromptSet:
    """Build a :class:`PromptSet` from storybench's flat format (or a mirror document)."""
    return content_from_flat(PromptSet, data, validate_prompt_set, context=context)


def render_prompt_set(prompt_set: PromptSet) -> list[str]:
    """The set for a person to read: each sequence and its prompts, in order."""
    lines: list[str] = []
    for name, prompts in prompt_set.sequences.items():
        lines.append(f"\n{name} ({len(prompts)} prompts)")
        lines.extend(f"  {i}. {prompt.name}: {prompt.text}" for i, prompt in enumerate(prompts, 1))
    return lines
