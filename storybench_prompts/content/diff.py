"""What changed between two sets of one kind, as data: the per-kind diffs the kinds point at.

``diff_prompt_sets`` and ``diff_evaluation_sets`` are pure functions of two sets; each
:class:`~storybench_prompts.content.kinds.ContentKind` names its own (``kind.diff``) and how one
of its changes reads (``kind.describe_change``). ``ops.diff`` is the front: ``diff_sets`` picks
the kind's diff, ``render_diff`` writes the report. No I/O.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .models import Criterion, EvaluationSet, Prompt, PromptSet, VersionedContent

__all__ = [
    "SCORING_GUIDELINES",
    "Change",
    "ChangeKind",
    "SetDiff",
    "describe_evaluation_change",
    "describe_prompt_change",
    "diff_evaluation_sets",
    "diff_prompt_sets",
]

ChangeKind = Literal["added", "removed", "changed", "moved"]

SCORING_GUIDELINES = "scoring_guidelines"
"""The ``sequence`` of the change to an evaluation set's scoring guidelines."""

_CRITERION_FIELDS = ("name", "description", "scale", "criteria")
_CRITERION_TEXT_FIELDS = ("name", "description", "criteria")


@dataclass(frozen=True)
class Change:
    """One difference between two sets.

    ``sequence`` is the sequence's name (for evaluation sets the criterion's key, or
    :data:`SCORING_GUIDELINES`); ``prompt`` the prompt's name, None when the change is to a whole
    sequence or criterion. Positions are 0-based indices into the sequence. ``diff`` holds
    unified-diff lines (no line endings) of a changed text.
    """

    sequence: str
    prompt: str | None
    change: ChangeKind
    renamed_from: str | None = None
    """A renamed sequence (``change == "changed"``): its name in the first set."""
    fields: tuple[str, ...] = ()
    """A changed criterion: which of name, description, scale, criteria changed."""
    from_position: int | None = None
    to_position: int | None = None
    from_scale: tuple[int, int] | None = None
    to_scale: tuple[int, int] | None = None
    diff: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sequence": self.sequence,
            "prompt": self.prompt,
            "change": self.change,
        }
        if self.renamed_from is not None:
            data["renamed_from"] = self.renamed_from
        if self.fields:
            data["fields"] = list(self.fields)
        if self.from_position is not None:
            data["from_position"] = self.from_position
        if self.to_position is not None:
            data["to_position"] = self.to_position
        if self.from_scale is not None:
            data["from_scale"] = list(self.from_scale)
        if self.to_scale is not None:
            data["to_scale"] = list(self.to_scale)
        if self.diff:
            data["diff"] = list(self.diff)
        return data


@dataclass(frozen=True)
class SetDiff:
    """Every change from set ``a`` to set ``b``, and which versions and hashes they were.

    ``identical`` is about content: two versions holding the same content are identical even
    though their hashes differ (the hash covers the version number).
    """

    kind: str
    """The noun of the kind: ``prompt set``, ``evaluation set``."""
    a_version: int
    a_config_hash: str
    b_version: int
    b_config_hash: str
    changes: tuple[Change, ...]
    identical: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identical", not self.changes)

    def as_json(self) -> dict[str, Any]:
        return {"identical": self.identical, "changes": [c.as_json() for c in self.changes]}


# -- prompt sets ------------------------------------------------------------------------------


def diff_prompt_sets(a: PromptSet, b: PromptSet) -> SetDiff:
    """Sequences added, removed and renamed; prompts added, removed, moved and changed.

    A sequence only in ``b`` that holds exactly the prompts (names and texts, in order) of one
    only in ``a`` is a rename. A prompt is *moved* when its place relative to the other prompts
    both versions share changed (a prompt inserted before it does not move it); the fewest
    prompts that explain the new order are reported (of two swapped, the one now first).
    Changes follow ``b``'s order — per sequence its prompts in ``b``'s order, then the prompts
    it lost — and sequences removed come last, in ``a``'s order.
    """
    renames = _renames(a.sequences, b.sequences)
    changes: list[Change] = []
    for name, prompts in b.sequences.items():
        if name in a.sequences:
            changes.extend(_diff_sequence(name, a.sequences[name], prompts, a.version, b.version))
        elif name in renames:
            changes.append(Change(name, None, "changed", renamed_from=renames[name]))
        else:
            changes.append(Change(name, None, "added"))
    renamed = set(renames.values())
    changes.extend(
        Change(name, None, "removed")
        for name in a.sequences
        if name not in b.sequences and name not in renamed
    )
    return _set_diff("prompt set", a, b, changes)


def _renames(
    a: Mapping[str, tuple[Prompt, ...]], b: Mapping[str, tuple[Prompt, ...]]
) -> dict[str, str]:
    """New name -> old name, pairing each added sequence with the first removed one like it."""
    removed = [name for name in a if name not in b]
    result: dict[str, str] = {}
    for name, prompts in b.items():
        if name in a:
            continue
        for old in removed:
            if a[old] == prompts:
                result[name] = old
                removed.remove(old)
                break
    return result


def _diff_sequence(
    sequence: str,
    old: Sequence[Prompt],
    new: Sequence[Prompt],
    a_version: int,
    b_version: int,
) -> Iterator[Change]:
    old_at = {p.name: i for i, p in enumerate(old)}
    shared = [i for i, p in enumerate(new) if p.name in old_at]
    in_place = {shared[k] for k in _longest_increasing([old_at[new[i].name] for i in shared])}
    for i, prompt in enumerate(new):
        j = old_at.get(prompt.name)
        if j is None:
            yield Change(sequence, prompt.name, "added", to_position=i)
            continue
        if old[j].text != prompt.text:
            path = f"{sequence}/{prompt.name}"
            yield Change(
                sequence,
                prompt.name,
                "changed",
                diff=_unified(
                    old[j].text, prompt.text, f"v{a_version}/{path}", f"v{b_version}/{path}"
                ),
            )
        if i not in in_place:
            yield Change(sequence, prompt.name, "moved", from_position=j, to_position=i)
    kept = {p.name for p in new}
    for j, prompt in enumerate(old):
        if prompt.name not in kept:
            yield Change(sequence, prompt.name, "removed", from_position=j)


def _longest_increasing(values: Sequence[int]) -> list[int]:
    """Indices of one longest strictly increasing subsequence of ``values`` (deterministic)."""
    tail_values: list[int] = []
    tail_index: list[int] = []
    previous = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect.bisect_left(tail_values, value)
        previous[i] = tail_index[k - 1] if k else -1
        if k == len(tail_values):
            tail_values.append(value)
            tail_index.append(i)
        else:
            tail_values[k] = value
            tail_index[k] = i
    result: list[int] = []
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        result.append(i)
        i = previous[i]
    return result[::-1]


# -- evaluation sets --------------------------------------------------------------------------


def diff_evaluation_sets(a: EvaluationSet, b: EvaluationSet) -> SetDiff:
    """Criteria added, removed or changed (by key), and a change of the scoring guidelines.

    Changes follow ``b``'s criteria, then the guidelines, then the criteria removed in ``a``'s
    order. The order of criteria is not content (the hash does not cover it), so it is not
    reported.
    """
    changes: list[Change] = []
    for key, criterion in b.criteria.items():
        before = a.criteria.get(key)
        if before is None:
            changes.append(Change(key, None, "added"))
        else:
            change = _diff_criterion(key, before, criterion, a.version, b.version)
            if change is not None:
                changes.append(change)
    if a.scoring_guidelines != b.scoring_guidelines:
        diff = _unified(
            a.scoring_guidelines,
            b.scoring_guidelines,
            f"v{a.version}/{SCORING_GUIDELINES}",
            f"v{b.version}/{SCORING_GUIDELINES}",
        )
        changes.append(
            Change(SCORING_GUIDELINES, None, "changed", fields=(SCORING_GUIDELINES,), diff=diff)
        )
    changes.extend(Change(key, None, "removed") for key in a.criteria if key not in b.criteria)
    return _set_diff("evaluation set", a, b, changes)


def _diff_criterion(
    key: str, old: Criterion, new: Criterion, a_version: int, b_version: int
) -> Change | None:
    fields = tuple(f for f in _CRITERION_FIELDS if getattr(old, f) != getattr(new, f))
    if not fields:
        return None
    diff: list[str] = []
    for f in _CRITERION_TEXT_FIELDS:
        if f in fields:
            path = f"{key}/{f}"
            diff += _unified(
                getattr(old, f), getattr(new, f), f"v{a_version}/{path}", f"v{b_version}/{path}"
            )
    scale_changed = "scale" in fields
    return Change(
        key,
        None,
        "changed",
        fields=fields,
        from_scale=old.scale if scale_changed else None,
        to_scale=new.scale if scale_changed else None,
        diff=tuple(diff),
    )


# -- how one change reads ----------------------------------------------------------------------


def describe_prompt_change(change: Change) -> str:
    """One change to a prompt set, as a person reads it (without its mark)."""
    if change.prompt is None:
        if change.renamed_from is not None:
            return f"sequence {change.renamed_from} renamed to {change.sequence}"
        return f"sequence {change.sequence} {change.change}"
    where = f"{change.sequence}/{change.prompt}"
    if change.change == "moved":
        return f"{where} moved from index {change.from_position} to {change.to_position}"
    if change.change == "added":
        return f"{where} added at index {change.to_position}"
    if change.change == "removed":
        return f"{where} removed from index {change.from_position}"
    return f"{where} text changed"


def describe_evaluation_change(change: Change) -> str:
    """One change to an evaluation set, as a person reads it (without its mark)."""
    if change.fields == (SCORING_GUIDELINES,):
        return "scoring guidelines changed"
    what = f"criterion {change.sequence} {change.change}"
    if change.fields:
        what += ": " + ", ".join(change.fields)
    if change.from_scale is not None and change.to_scale is not None:
        what += f" (scale {_scale(change.from_scale)} -> {_scale(change.to_scale)})"
    return what


def _scale(scale: tuple[int, int]) -> str:
    return f"{scale[0]}-{scale[1]}"


# -- shared -----------------------------------------------------------------------------------


def _set_diff(
    kind: str,
    a: VersionedContent,
    b: VersionedContent,
    changes: Sequence[Change],
) -> SetDiff:
    return SetDiff(
        kind=kind,
        a_version=a.version,
        a_config_hash=a.config_hash,
        b_version=b.version,
        b_config_hash=b.config_hash,
        changes=tuple(changes),
    )


def _unified(before: str, after: str, from_label: str, to_label: str) -> tuple[str, ...]:
    """Unified-diff lines, without line endings; a change of the final newline is marked."""
    if not before.endswith("\n") and not after.endswith("\n"):
        # Neither ends with a newline (most prompts): no "No newline" marker on every diff.
        before, after = before + "\n", after + "\n"
    lines: list[str] = []
    for line in difflib.unified_diff(
        _split_lines(before), _split_lines(after), fromfile=from_label, tofile=to_label
    ):
        if line.endswith("\n"):
            lines.append(line[:-1])
        else:
            lines += [line, "\\ No newline at end of file"]
    return tuple(lines)


def _split_lines(text: str) -> list[str]:
    """Lines split at ``\\n`` only, each keeping it (the last one may lack it)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
