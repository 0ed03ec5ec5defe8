"""Operator tasks built on the repository pieces: comparing Directus with the mirror, and
checking that every part of the stack works. The CLI prints what these return."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from ._directus import DirectusSource
from ._exceptions import StorybenchPromptsError
from ._models import VersionInfo
from ._repository import PromptMirror

__all__ = ["CheckResult", "VersionComparison", "compare_versions", "run_checks"]

EXPECTED_SCHEMA: dict[str, tuple[str, ...]] = {
    "prompt_set_versions": (
        "id", "version_number", "version_name", "status", "description",
        "date_created", "date_updated", "published_at", "based_on_version_number",
        "sequences_in_set",
    ),
    "prompt_sequences": ("id", "sequence_name", "sequence_description", "status", "prompts_in_sequence"),
    "prompts": (
        "id", "name", "text", "order_in_sequence", "status", "guidance_notes",
        "expected_outcome_summary", "tags",
    ),
    "prompt_set_versions_prompt_sequences": ("id", "prompt_set_versions_id", "prompt_sequences_id"),
    "prompt_sequences_prompts": ("id", "prompt_sequences_id", "prompts_id"),
}  # fmt: skip

VersionState = Literal["same", "missing", "differs", "mirror_only", "unknown"]


@dataclass(frozen=True, slots=True)
class VersionComparison:
    version: int
    version_name: str | None
    directus_hash: str | None
    mirror_hash: str | None
    state: VersionState
    error: str | None = None


async def compare_versions(
    source: DirectusSource, mirror: PromptMirror, *, concurrency: int = 4
) -> list[VersionComparison]:
    """Every published Directus version beside the mirror's copy, plus mirror-only versions.

    Raises when Directus cannot list its versions; a version that fails to load is ``unknown``.
    """
    published = await source.list_versions()
    mirrored = {info.version: info for info in await mirror.versions()}
    limiter = anyio.CapacityLimiter(concurrency)
    rows: dict[int, VersionComparison] = {}

    async def compare(info: VersionInfo) -> None:
        mirror_hash = mirrored[info.version].config_hash if info.version in mirrored else None
        try:
            async with limiter:
                directus_hash = (await source.get(info.version)).config_hash
        except StorybenchPromptsError as exc:
            rows[info.version] = VersionComparison(
                info.version,
                info.version_name,
                None,
                mirror_hash,
                "unknown",
                str(exc).splitlines()[0],
            )
            return
        state: VersionState = (
            "missing"
            if mirror_hash is None
            else "same"
            if mirror_hash == directus_hash
            else "differs"
        )
        rows[info.version] = VersionComparison(
            info.version, info.version_name, directus_hash, mirror_hash, state
        )

    async with anyio.create_task_group() as tg:
        for info in published:
            tg.start_soon(compare, info)
    for version, info in mirrored.items():
        if version not in rows:
            rows[version] = VersionComparison(
                version, info.version_name, None, info.config_hash, "mirror_only"
            )
    return [rows[v] for v in sorted(rows)]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


async def _check(name: str, probe: Callable[[], Awaitable[str]]) -> CheckResult:
    try:
        return CheckResult(name, True, await probe())
    except StorybenchPromptsError as exc:
        return CheckResult(name, False, str(exc).splitlines()[0])


async def run_checks(
    source: DirectusSource,
    mirror: PromptMirror,
    *,
    max_mirror_age: float = 7 * 24 * 3600.0,
) -> list[CheckResult]:
    """Directus reachable, token valid, schema as expected; mirror reachable, writable, fresh."""
    results: list[CheckResult] = []

    async def reachable() -> str:
        await source.test_connection()
        return f"{source.url} answers and the token may read prompt_set_versions"

    results.append(await _check("directus", reachable))
    directus_ok = results[-1].ok

    async def schema() -> str:
        # Asking for every expected field through the data API needs only read permission:
        # a missing collection or field answers 403 FORBIDDEN, as a missing permission does.
        for collection, fields in EXPECTED_SCHEMA.items():
            await source.query(
                f"/items/{collection}",
                {"limit": "1", "fields": ",".join(fields)},
                f"the schema check of {collection}",
            )
        return f"{len(EXPECTED_SCHEMA)} collections with the expected fields"

    if directus_ok:
        results.append(await _check("schema", schema))
    else:
        results.append(CheckResult("schema", False, "skipped: Directus unreachable"))

    async def writable() -> str:
        await mirror.check_writable()
        return f"{mirror!r} is reachable and writable"

    results.append(await _check("mirror", writable))

    async def freshness() -> str:
        stored = await mirror.versions()
        if not stored:
            raise _CheckFailed(
                "the mirror holds no prompt set: run `storybench-prompts sync --all`"
            )
        newest = await mirror.get(stored[-1].version)
        assert newest.provenance is not None
        age = time.time() - newest.provenance.fetched_at_epoch
        if directus_ok:
            latest = await source.latest()
            if latest.version not in {info.version for info in stored}:
                raise _CheckFailed(
                    f"Directus publishes version {latest.version}, the mirror lacks it: run sync"
                )
        if age > max_mirror_age:
            raise _CheckFailed(f"newest mirror copy is {age / 3600:.0f} h old: run sync")
        return f"{len(stored)} version(s), newest v{newest.version} read {age:.0f} s ago"

    results.append(await _check("freshness", freshness))
    return results


class _CheckFailed(StorybenchPromptsError):
    pass
