"""A lockfile a results folder keeps: which prompt set and criteria a run used, by hash.

A benchmark run writes one next to its results; a later run, or a person, reads it back to get
exactly that content (``get_by_hash``) or to check that Directus still serves it. Loading is
strict: a lockfile that is wrong in any way raises :class:`LockFileError`, naming the file and
the problem, rather than letting a run go ahead against the wrong prompts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit

from .._exceptions import ConfigurationError
from .._files import write_atomically
from .._version import __version__
from ..content.kinds import KINDS, kind_of
from ..content.models import EvaluationSet, PromptSet, VersionedContent

if TYPE_CHECKING:
    from ..content.kinds import ContentKind

__all__ = ["KNOWN_FORMATS", "Lock", "LockFileError", "LockedSet", "clean_url"]


def _ensure_kind(content: object, lock_key: str) -> None:
    """TypeError unless ``content`` is of the kind a lock keeps under ``lock_key``."""
    try:
        key = kind_of(content).lock_key  # type: ignore[arg-type]
    except TypeError:
        key = None
    if key != lock_key:
        wanted = next(k.model.__name__ for k in KINDS.values() if k.lock_key == lock_key)
        article = "an" if wanted[0] in "AEIOU" else "a"
        raise TypeError(f"{lock_key} must be {article} {wanted}, not {type(content).__name__}")


KNOWN_FORMATS = (1,)
"""The lockfile formats this version reads and writes (it writes the last)."""

_CONFIG_HASH = re.compile(r"[0-9a-f]{16}")
_SET_KEYS = ("prompt_set", "evaluation_set")
"""The members that hold a locked set (each kind's ``lock_key``)."""
_REQUIRED = ("format", "prompt_set")
"""The keys a lockfile must hold; ``evaluation_set``, ``directus_url``, ``created_at`` and
``tool_version`` may be missing (a lock written by hand names only what it pins)."""


class LockFileError(ConfigurationError):
    """A lockfile cannot be read or written, or is not a valid lockfile. ``path`` names it."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"lock file {self.path}: {problem}")


@dataclass(frozen=True)
class LockedSet:
    """One set as a run used it: its version and storybench's ``config_hash``."""

    version: int
    config_hash: str

    def __post_init__(self) -> None:
        problem = _version_problem(self.version) or _hash_problem(self.config_hash)
        if problem:
            raise ValueError(problem)

    @classmethod
    def of(cls, content: VersionedContent) -> Self:
        return cls(version=content.version, config_hash=content.config_hash)

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "config_hash": self.config_hash}


@dataclass(frozen=True)
class Lock:
    """Which sets a run used, where from, when, and by which version of this tool.

    ``directus_url`` never holds credentials or a query string: they are removed on
    construction, so neither a token nor a password can reach the file.
    """

    prompt_set: LockedSet
    evaluation_set: LockedSet | None
    directus_url: str | None
    created_at: datetime | None
    """None for a lockfile that does not say when it was made."""
    tool_version: str | None
    """None for a lockfile that does not say which version wrote it."""
    format: int = 1

    def __post_init__(self) -> None:
        if not _is_int(self.format) or self.format not in KNOWN_FORMATS:
            raise ValueError(f"format {self.format!r} is not known {_known()}")
        if self.created_at is not None and self.created_at.utcoffset() is None:
            raise ValueError("created_at must be an aware datetime")
        if self.directus_url is not None:
            object.__setattr__(self, "directus_url", clean_url(self.directus_url))

    @classmethod
    def from_sets(
        cls,
        prompt_set: PromptSet,
        evaluation_set: EvaluationSet | None = None,
        *,
        directus_url: str | None,
        created_at: datetime | None = None,
    ) -> Self:
        """The lock of sets as they were served (``created_at`` defaults to now, in UTC)."""
        _ensure_kind(prompt_set, "prompt_set")
        if evaluation_set is not None:
            _ensure_kind(evaluation_set, "evaluation_set")
        return cls(
            prompt_set=LockedSet.of(prompt_set),
            evaluation_set=LockedSet.of(evaluation_set) if evaluation_set is not None else None,
            directus_url=directus_url,
            created_at=created_at if created_at is not None else datetime.now(UTC),
            tool_version=__version__,
        )

    def set_of(self, kind: ContentKind[Any]) -> LockedSet | None:
        """The locked set of ``kind`` (by its ``lock_key``), None when the lock names none."""
        if kind.lock_key not in _SET_KEYS:
            return None
        found: LockedSet | None = getattr(self, kind.lock_key)
        return found

    def sets(self) -> list[tuple[ContentKind[Any], LockedSet]]:
        """Each kind this lock names, with its locked set (prompt sets first)."""
        from ..content.kinds import KINDS

        named = ((kind, self.set_of(kind)) for kind in KINDS.values())
        return [(kind, locked) for kind, locked in named if locked is not None]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "prompt_set": self.prompt_set.as_json(),
            "evaluation_set": self.evaluation_set.as_json() if self.evaluation_set else None,
            "directus_url": self.directus_url,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "tool_version": self.tool_version,
        }

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the lockfile atomically: the old file or the new one, never a part of one."""
        target = Path(path)
        data = (json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n").encode()
        try:
            write_atomically(target, data, keep_mode=True)
        except OSError as exc:
            raise LockFileError(target, f"cannot be written: {_os_reason(exc)}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read and validate a lockfile; anything wrong raises :class:`LockFileError`."""
        source = Path(path)
        try:
            raw = source.read_bytes()
        except FileNotFoundError as exc:
            raise LockFileError(source, "does not exist") from exc
        except OSError as exc:
            raise LockFileError(source, f"cannot be read: {_os_reason(exc)}") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LockFileError(source, f"is not UTF-8 text (byte {exc.start})") from exc
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except _DuplicateKeyError as exc:
            raise LockFileError(source, f"is not valid: duplicate key {exc.key!r}") from None
        except json.JSONDecodeError as exc:
            raise LockFileError(
                source, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except (RecursionError, ValueError) as exc:  # nested too deep, an integer too long
            raise LockFileError(source, f"is not a lock file ({type(exc).__name__})") from None
        try:
            return cls._from_json(data)
        except _Invalid as exc:
            raise LockFileError(source, str(exc)) from None

    @classmethod
    def _from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise _Invalid(f"the top level must be a JSON object, not {_json_type(data)}")
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise _Invalid(f"missing key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        fmt = data["format"]
        if not _is_int(fmt):
            raise _Invalid(f"format must be an integer, not {_shown(fmt)}")
        if fmt not in KNOWN_FORMATS:
            raise _Invalid(f"format {fmt} is not supported {_known()}")
        prompt_set = _locked_set(data["prompt_set"], "prompt_set")
        evaluation_set = (
            None
            if data.get("evaluation_set") is None
            else _locked_set(data["evaluation_set"], "evaluation_set")
        )
        url = data.get("directus_url")
        if url is not None and not isinstance(url, str):
            raise _Invalid(f"directus_url must be a string or null, not {_shown(url)}")
        if isinstance(url, str):
            try:
                url = clean_url(url)
            except ValueError as exc:
                raise _Invalid(f"directus_url: {exc}") from None
        tool_version = data.get("tool_version")
        if tool_version is not None and (not isinstance(tool_version, str) or not tool_version):
            raise _Invalid(
                f"tool_version must be a non-empty string or null, not {_shown(tool_version)}"
            )
        created_at = data.get("created_at")
        return cls(
            prompt_set=prompt_set,
            evaluation_set=evaluation_set,
            directus_url=url,
            created_at=None if created_at is None else _created_at(created_at),
            tool_version=tool_version,
            format=fmt,
        )


def clean_url(url: str) -> str:
    """``url`` without userinfo (user, password or token), query string or fragment.

    Raises ValueError, without repeating the URL (it may hold a secret), unless it is an
    absolute http(s) URL with a host.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise ValueError("not a valid URL") from None
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme.lower() not in {"http", "https"} or not host:
        raise ValueError("not an absolute http(s) URL with a host")
    return urlunsplit((parts.scheme.lower(), host, parts.path, "", ""))


# -- validation -------------------------------------------------------------------------------


class _Invalid(Exception):
    """What is wrong with a lockfile's content (the message, without the path)."""


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _locked_set(value: Any, where: str) -> LockedSet:
    if not isinstance(value, Mapping):
        raise _Invalid(f"{where} must be an object, not {_shown(value)}")
    for key in ("version", "config_hash"):
        if key not in value:
            raise _Invalid(f"{where}.{key} is missing")
    problem = _version_problem(value["version"]) or _hash_problem(value["config_hash"])
    if problem:
        raise _Invalid(f"{where}.{problem}")
    return LockedSet(version=value["version"], config_hash=value["config_hash"])


def _version_problem(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None
    return f"version must be a positive integer, not {_shown(value)}"


def _hash_problem(value: object) -> str | None:
    if isinstance(value, str) and _CONFIG_HASH.fullmatch(value):
        return None
    return f"config_hash must be 16 lowercase hex characters, not {_shown(value)}"


def _created_at(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _Invalid(f"created_at must be an ISO-8601 string, not {_shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"created_at is not an ISO-8601 date and time: {_shown(value)}") from None
    if moment.utcoffset() is None:
        raise _Invalid(f"created_at has no time zone: {_shown(value)}")
    return moment


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _shown(value: object) -> str:
    """The value as JSON, cut short: enough to find it in the file."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _known() -> str:
    return f"(known formats: {', '.join(str(f) for f in KNOWN_FORMATS)})"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


# -- writing ----------------------------------------------------------------------------------
