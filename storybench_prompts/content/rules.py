"""The content rules both kinds share, and how problems are named.

Every string must be storable and read back exactly by both mirrors: no lone surrogate
anywhere, no NUL (nor a leading ``$`` or a ``.``) in a name that becomes a MongoDB key, and the
whole set at most :data:`MAX_CONTENT_BYTES` of JSON (a MongoDB document holds 16 MiB). Every
broken rule is collected and raised together as one :class:`InvalidPromptSetError`; each
kind's own rules are in ``prompt_sets`` and ``evaluation_sets``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from .._exceptions import InvalidPromptSetError, Problem
from .models import VersionedContent

__all__ = [
    "MAX_CONTENT_BYTES",
    "SEPARATOR",
    "ListLabel",
    "check_key",
    "check_text",
    "checked",
    "common_problems",
    "content_from_flat",
    "join_path",
    "label",
    "parse_item",
    "problems_from_validation_error",
    "quoted",
]

C = TypeVar("C", bound=VersionedContent)

# MongoDB refuses documents over 16 MiB; the mirror document holds the content once plus a
# few hundred bytes of metadata. JSON's escapes make this a generous bound on the BSON size.
MAX_CONTENT_BYTES = 12 * 1024 * 1024

# Junction hops are left out of problem paths: editors think in sets, sequences and prompts.
_JUNCTION_KEYS = frozenset(
    {"prompt_sequences_id", "prompts_id", "evaluation_criteria_id", "scoring_id"}
)

SEPARATOR = " > "
"""Between the steps of a problem's path: ``v2 > sequence "FilmNarrative" (id 3) > text``."""

_NAME_LIMIT = 60


def quoted(name: str) -> str:
    """A name as a person reads it in a path: in double quotes, escaped, cut short."""
    text = name if len(name) <= _NAME_LIMIT else name[: _NAME_LIMIT - 3] + "..."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: printable only escaped
        return json.dumps(text, ensure_ascii=True)
    return json.dumps(text, ensure_ascii=False)


def label(
    noun: str,
    name: str | None,
    *,
    directus_id: object = None,
    position: int | None = None,
) -> str:
    """One step of a path: ``prompt "Visual Realization" (id 40)``.

    The Directus id when there is one (what an editor searches for), else the 1-based position
    among the rows (flat sets have no ids).
    """
    out = f"{noun} {quoted(name)}" if isinstance(name, str) else noun
    if isinstance(directus_id, int | str) and not isinstance(directus_id, bool):
        out += f" (id {directus_id})"
    elif position is not None:
        out += f" (position {position})"
    return out


def join_path(*steps: str) -> str:
    return SEPARATOR.join(step for step in steps if step)


ListLabel = tuple[str, str, str]
"""How a nested list of Directus rows is named in paths: ``(noun, junction key, name field)``,
e.g. ``("prompt", "prompts_id", "name")``."""


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


def _labelled_path(
    loc: Sequence[int | str], raw: Mapping[str, Any], labels: Mapping[str, ListLabel]
) -> str:
    """The path of a validation error in a raw Directus item, naming each row it passes
    through (its name and id, read from ``raw``) rather than counting rows."""
    steps: list[str] = []
    number = raw.get("version_number")
    if isinstance(number, int) and not isinstance(number, bool):
        steps.append(f"v{number}")
    node: Any = raw
    in_list: str | None = None
    for part in loc:
        if isinstance(part, int):
            row = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if in_list is not None:
                noun, junction, name_field = labels[in_list]
                item = row.get(junction) if isinstance(row, Mapping) else None
                item = item if isinstance(item, Mapping) else {}
                steps.append(
                    label(
                        noun,
                        item.get(name_field),
                        directus_id=item.get("id"),
                        position=part + 1,
                    )
                )
                in_list = None
            elif steps:
                steps[-1] += f"[{part}]"
            else:
                steps.append(f"[{part}]")
            node = row
            continue
        if in_list is not None:  # a list field that was not indexed: name it as it is
            steps.append(in_list)
            in_list = None
        node = node.get(part) if isinstance(node, Mapping) else None
        if part in _JUNCTION_KEYS:
            continue
        if part in labels:
            in_list = part
        else:
            steps.append(str(part))
    if in_list is not None:
        steps.append(in_list)
    return join_path(*steps)


def problems_from_validation_error(
    exc: ValidationError,
    prefix: str = "",
    *,
    raw: Mapping[str, Any] | None = None,
    labels: Mapping[str, ListLabel] | None = None,
) -> list[Problem]:
    """One problem per validation error. With the ``raw`` item and its list ``labels``, paths
    name the rows (``v2 > sequence "S" (id 3) > prompt "p" (id 40) > text``)."""
    problems = []
    for err in exc.errors(include_url=False):
        if raw is not None and labels is not None:
            path = _labelled_path(err["loc"], raw, labels)
        else:
            path = _path(err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        problems.append(Problem(path, err["msg"].lower()))
    return problems


def parse_item(
    model: type[Any],
    raw: object,
    context: str,
    labels: Mapping[str, ListLabel] | None = None,
) -> Any:
    """``raw`` validated as ``model``; every problem named by its path (with ``labels``, the
    rows are named by their names and ids)."""
    if not isinstance(raw, Mapping):
        raise InvalidPromptSetError(
            [Problem("", f"expected an object, got {type(raw).__name__}")], context=context
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, raw=raw, labels=labels or {})
        raise InvalidPromptSetError(problems, context=context) from None


def _text_problem(value: str) -> str | None:
    """Why a string cannot be stored and read back exactly by both mirrors, if it cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def check_key(name: str) -> str | None:
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


def check_text(problems: list[Problem], path: str, value: str, *, blank_ok: bool = False) -> None:
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
            f"v{content.version}",
            f"{size} bytes of content, over the {MAX_CONTENT_BYTES}-byte limit a mirror "
            "document can hold",
        )
    return None


def common_problems(content: VersionedContent, problems: list[Problem]) -> list[Problem]:
    """``problems`` (a kind's own) plus the rules every kind shares."""
    head = f"v{content.version}"
    if content.version_name is not None:
        check_text(problems, join_path(head, "version_name"), content.version_name, blank_ok=True)
    if isinstance(content.directus_id, str):
        check_text(problems, join_path(head, "directus_id"), content.directus_id)
    if not problems:
        size = _size_problem(content)
        if size:
            problems.append(size)
    return problems


def checked(content: C, problems: list[Problem], *, context: str = "") -> C:
    """``content``, unless its kind's ``problems`` or the shared rules say it breaks a rule."""
    problems = common_problems(content, problems)
    if problems:
        raise InvalidPromptSetError(problems, context=context or f"version {content.version}")
    return content


def content_from_flat(
    model: type[C],
    data: Mapping[str, Any],
    validate: Callable[[C], list[Problem]],
    *,
    context: str = "",
) -> C:
    """Build a set of ``model`` from storybench's flat format (or a mirror document), with the
    kind's rules (``validate``) and the shared ones."""
    fields = {
        name: data.get(name) for name in model.model_fields if name != "provenance" and name in data
    }
    try:
        content = model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidPromptSetError(problems_from_validation_error(exc), context=context) from None
    return checked(content, validate(content), context=context)
