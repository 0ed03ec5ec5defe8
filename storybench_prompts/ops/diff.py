"""What changed between two sets: the front over the per-kind diffs, and the report.

A run records a ``config_hash``; when a later run behaves differently, the first question is what
changed in its prompts or criteria. :func:`diff_sets` answers it as data, in a stable order
(:meth:`SetDiff.as_json`), with the diff of the sets' kind (``ContentKind.diff``, defined in
``content.diff``); :func:`render_diff` writes it as a report for a person. No I/O.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable, Iterator, Mapping

from ..content.diff import (
    SCORING_GUIDELINES,
    Change,
    ChangeKind,
    SetDiff,
    diff_evaluation_sets,
    diff_prompt_sets,
)
from ..content.kinds import KINDS, kind_of
from ..content.models import VersionedContent

__all__ = [
    "SCORING_GUIDELINES",
    "Change",
    "ChangeKind",
    "SetDiff",
    "diff_evaluation_sets",
    "diff_prompt_sets",
    "diff_sets",
    "render_diff",
]


def diff_sets(a: VersionedContent, b: VersionedContent) -> SetDiff:
    """The diff of two sets of the same kind (``kind_of(a).diff``); TypeError for sets of
    two kinds, or of a kind without a diff."""
    if type(a) is not type(b):
        raise TypeError(f"cannot diff a {type(a).__name__} against a {type(b).__name__}")
    kind = kind_of(a)
    if kind.diff is None:
        raise TypeError(f"no diff for {kind.noun}s ({type(a).__name__})")
    return kind.diff(a, b)


def _generic_change(change: Change) -> str:
    what = change.sequence if change.prompt is None else f"{change.sequence}/{change.prompt}"
    return f"{what} {change.change}"


def _describer(diff: SetDiff) -> Callable[[Change], str]:
    """How a change of this diff's kind reads (found by the kind's noun: kinds are data)."""
    for kind in KINDS.values():
        if kind.noun == diff.kind and kind.describe_change is not None:
            return kind.describe_change
    return _generic_change


# -- the report -------------------------------------------------------------------------------

_CHANGE_STYLES: Mapping[ChangeKind, str] = {
    "added": "green",
    "removed": "red",
    "changed": "yellow",
    "moved": "blue",
}
_MARKS: Mapping[ChangeKind, str] = {"added": "+", "removed": "-", "changed": "~", "moved": ">"}
# Bidirectional overrides and isolates: they would reorder what the terminal shows.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def render_diff(diff: SetDiff, *, color: bool) -> str:
    """A report for a person: a header, one line per change, the text diffs indented.

    With ``color`` the lines carry ANSI colours (green additions, red removals); without it the
    text is plain. Control characters in names and texts are shown escaped either way.
    """
    lines = list(_report(diff))
    if not color:
        return "".join(text + "\n" for text, _ in lines)
    from rich.console import Console
    from rich.text import Text

    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=True,
        color_system="standard",
        soft_wrap=True,
        markup=False,
        emoji=False,
        highlight=False,
    )
    for text, style in lines:
        console.print(Text(text, style=style))
    return out.getvalue()


def _report(diff: SetDiff) -> Iterator[tuple[str, str]]:
    yield (
        _printable(
            f"{diff.kind} v{diff.a_version} ({diff.a_config_hash})"
            f" -> v{diff.b_version} ({diff.b_config_hash})"
        ),
        "bold",
    )
    if diff.identical:
        yield "identical: no changes", ""
        return
    yield f"{len(diff.changes)} change{'s' if len(diff.changes) != 1 else ''}", ""
    describe = _describer(diff)
    for change in diff.changes:
        text = f"{_MARKS[change.change]} {describe(change)}"
        yield "  " + _printable(text), _CHANGE_STYLES[change.change]
        for line in change.diff:
            yield "      " + _printable(line), _diff_style(line)


def _diff_style(line: str) -> str:
    if line.startswith(("---", "+++")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    return "dim" if line.startswith("\\") else ""


def _printable(text: str) -> str:
    """Control characters (but tab) and bidi overrides escaped, so names cannot drive a terminal."""
    if text.isprintable():
        return text
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if (c != "\t" and unicodedata.category(c) == "Cc") or c in _BIDI
        else c
        for c in text
    )
