"""The content rules both kinds share, and how problems are named.

Every string must be storable and read back exactly by both mirrors: no lone surrogate
anywhere, no NUL (nor a leading ``$`` or a ``.``) in a name that becomes a MongoDB key, and the
whole set at most :data:`MAX_CONTENT_BYTES` of JSON (a MongoDB document holds 16 MiB). Every
broken rule is collected and raised together as one :class:`InvalidPromptSetError`; each
kind's own rules are in ``prompt_sets`` and ``evaluation_sets``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from .._exceptions import InvalidPromptSetError, Problem
from .models import VersionedContent

__all__ = [
    "MAX_CONTENT_BYTES",
    "check_key",
    "check_text",
    "checked",
    "common_problems",
    "content_from_flat",
    "parse_item",
    "problems_from_validation_error",
]

C = TypeVar("C", bound=VersionedContent)

# MongoDB refuses documents over 16 MiB; the mirror document holds the content once plus a
# few hundred bytes of metadata. JSON's escapes make this a generous bound on the BSON size.
MAX_CONTENT_BYTES = 12 * 1024 * 1024

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


def parse_item(model: type[Any], raw: object, context: str) -> Any:
    if not isinstance(raw, Mapping):
        raise InvalidPromptSetError(
            [Problem("", f"expected an object, got {type(raw).__name__}")], context=context
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidPromptSetError(problems_from_validation_error(exc), context=context) from None


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
            "",
            f"{size} bytes of content, over the {MAX_CONTENT_BYTES}-byte limit a mirror "
            "document can hold",
        )
    return None


def common_problems(content: VersionedContent, problems: list[Problem]) -> list[Problem]:
    """``problems`` (a kind's own) plus the rules every kind shares."""
    if content.version_name is not None:
        check_text(problems, "version_name", content.version_name, blank_ok=True)
    if isinstance(content.directus_id, str):
        check_text(problems, "directus_id", content.directus_id)
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
