"""Directus's published versions beside the mirror's copies, version by version, for any
content kind (``storybench-prompts versions`` prints what this returns)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

import anyio

from .._defaults import DEFAULT_SYNC_CONCURRENCY
from .._exceptions import (
    DirectusAuthenticationError,
    DirectusTimeoutError,
    InvalidPromptSetError,
    SourceUnavailableError,
    StorybenchPromptsError,
)
from ..content.models import VersionedContent, VersionInfo
from ..mirrors.base import PromptMirror
from ..sources.base import PromptRepository

__all__ = ["NEEDS_ATTENTION", "VersionComparison", "VersionState", "compare_versions"]

C = TypeVar("C", bound=VersionedContent)
T = TypeVar("T")


VersionState = Literal[
    "same", "missing", "differs", "mirror_only", "withdrawn", "refused", "unknown", "unverified"
]
"""``same``/``missing``/``differs``: a published version beside the mirror's copy;
``mirror_only``: held by the mirror, not published; ``withdrawn``: kept by the mirror as a
record only; ``refused``: Directus's content breaks the rules; ``unknown``: Directus failed for
that version; ``unverified``: Directus gave no listing, so the mirror's copy was not compared."""

NEEDS_ATTENTION: frozenset[str] = frozenset(
    {"missing", "differs", "refused", "unknown", "unverified"}
)
"""The states ``versions`` exits 1 for."""


@dataclass(frozen=True, slots=True)
class VersionComparison:
    version: int
    version_name: str | None
    directus_hash: str | None
    mirror_hash: str | None
    state: VersionState
    error: str | None = None


async def answered_within(call: Awaitable[T], within: float | None, what: str) -> T:
    """``await call``, or :class:`DirectusTimeoutError` after ``within`` seconds."""
    if within is None:
        return await call
    with anyio.move_on_after(within) as scope:
        return await call
    assert scope.cancelled_caught
    raise DirectusTimeoutError(f"Directus did not answer {what} within {within:g} s")


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def refusal(exc: InvalidPromptSetError) -> str:
    if not exc.problems:
        return first_line(exc)
    more = len(exc.problems) - 1
    return str(exc.problems[0]) + (f" (and {more} more problem(s))" if more else "")


async def _withdrawn(mirror: PromptMirror[Any]) -> list[VersionInfo]:
    listing = getattr(mirror, "withdrawn_versions", None)
    if listing is None:
        return []
    found: list[VersionInfo] = await listing()
    return found


async def compare_versions(
    source: PromptRepository[C],
    mirror: PromptMirror[C],
    *,
    concurrency: int = DEFAULT_SYNC_CONCURRENCY,
    answer_within: float | None = None,
    fall_back_to_mirror: bool = False,
) -> list[VersionComparison]:
    """Every published version of the source beside the mirror's copy, plus mirror-only and
    withdrawn ones.

    Works for any kind: the source and the mirror carry it. ``answer_within`` bounds each answer
    awaited from the source (the listing, each version); a version that fails to load is
    ``unknown``, one whose content is refused ``refused``. Raises when the source cannot list
    its versions, unless ``fall_back_to_mirror``: then an outage (no answer in time, refused,
    5xx...) gives the mirror's side, each row ``unverified`` with the reason. A rejected token
    always raises: it is a misconfiguration, not an outage.
    """
    mirrored = {info.version: info for info in await mirror.versions()}
    withdrawn = {info.version: info for info in await _withdrawn(mirror)}
    noun = getattr(getattr(source, "kind", None), "noun", "set")
    try:
        published = await answered_within(
            source.versions(), answer_within, f"the list of published {noun}s"
        )
    except SourceUnavailableError as exc:
        if not fall_back_to_mirror or isinstance(exc, DirectusAuthenticationError):
            raise
        if not mirrored and not withdrawn:
            raise  # nothing to show instead: an empty table would read as "all is well"
        reason = first_line(exc)
        rows = [
            VersionComparison(v, i.version_name, None, i.config_hash, "unverified", reason)
            for v, i in mirrored.items()
        ]
        rows += [
            VersionComparison(v, i.version_name, None, i.config_hash, "withdrawn")
            for v, i in withdrawn.items()
            if v not in mirrored
        ]
        return sorted(rows, key=lambda r: r.version)
    limiter = anyio.CapacityLimiter(concurrency)
    rows_by_version: dict[int, VersionComparison] = {}

    async def compare(info: VersionInfo) -> None:
        mirror_hash = mirrored[info.version].config_hash if info.version in mirrored else None
        row = partial(VersionComparison, info.version, info.version_name)
        try:
            async with limiter:
                served = await answered_within(
                    source.get(info.version), answer_within, f"{noun} version {info.version}"
                )
        except InvalidPromptSetError as exc:
            rows_by_version[info.version] = row(None, mirror_hash, "refused", refusal(exc))
            return
        except StorybenchPromptsError as exc:
            rows_by_version[info.version] = row(None, mirror_hash, "unknown", first_line(exc))
            return
        directus_hash = served.config_hash
        state: VersionState = (
            "missing"
            if mirror_hash is None
            else "same"
            if mirror_hash == directus_hash
            else "differs"
        )
        rows_by_version[info.version] = row(directus_hash, mirror_hash, state)

    async with anyio.create_task_group() as tg:
        for info in published:
            tg.start_soon(compare, info)
    for version, info in mirrored.items():
        if version not in rows_by_version:
            rows_by_version[version] = VersionComparison(
                version, info.version_name, None, info.config_hash, "mirror_only"
            )
    for version, info in withdrawn.items():
        if version not in rows_by_version:
            rows_by_version[version] = VersionComparison(
                version, info.version_name, None, info.config_hash, "withdrawn"
            )
    return [rows_by_version[v] for v in sorted(rows_by_version)]
