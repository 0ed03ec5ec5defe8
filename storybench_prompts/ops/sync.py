"""Copying published versions (of any content kind) from the source into a mirror."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from .._defaults import DEFAULT_SYNC_CONCURRENCY
from .._exceptions import (
    DirectusNotFoundError,
    InvalidPromptSetError,
    MirrorUnavailableError,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from ..content.models import VersionedContent
from ..mirrors.base import PromptMirror
from ..sources.base import PromptRepository

__all__ = ["DEFAULT_SYNC_CONCURRENCY", "SyncOutcome", "SyncResult", "sync_versions"]


SyncOutcome = Literal["new", "updated", "unchanged", "refused", "not_found", "failed", "withdrawn"]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What happened to one version. ``refused``: invalid content, the mirror kept its copy.
    ``withdrawn``: Directus no longer publishes it; the mirror keeps it as a record only."""

    version: int
    outcome: SyncOutcome
    config_hash: str | None = None
    previous_hash: str | None = None
    error: StorybenchPromptsError | None = None
    prompt_set: VersionedContent | None = None
    """The content synced (a prompt set or an evaluation set)."""

    @property
    def ok(self) -> bool:
        return self.outcome in ("new", "updated", "unchanged", "withdrawn")

    @property
    def drifted(self) -> bool:
        """The version's content changed under the same version number."""
        return self.outcome == "updated" and self.previous_hash is not None


Fetched = VersionedContent | StorybenchPromptsError
"""What a batched read brought for one version: its set, or the error that stands for it."""


async def sync_one(
    source: PromptRepository[Any],
    mirror: PromptMirror[Any],
    version: int,
    *,
    dry_run: bool = False,
    fetched: Fetched | None = None,
) -> SyncResult:
    """Sync one version: read it (unless a batched read already ``fetched`` it), then save."""
    try:
        if fetched is None:
            prompt_set = await source.get(version)
        elif isinstance(fetched, StorybenchPromptsError):
            raise fetched
        else:
            prompt_set = fetched
    except InvalidPromptSetError as exc:
        return SyncResult(version, "refused", error=exc)
    except PromptSetNotFoundError as exc:
        if not dry_run:
            try:
                await mirror.withdraw(version)
            except StorybenchPromptsError as withdraw_exc:
                return SyncResult(version, "failed", error=withdraw_exc)
        return SyncResult(version, "not_found", error=exc)
    except StorybenchPromptsError as exc:
        return SyncResult(version, "failed", error=exc)
    try:
        previous = await mirror.stored_hash(version)
        if dry_run:
            outcome: SyncOutcome = (
                "new"
                if previous is None
                else "unchanged"
                if previous == prompt_set.config_hash
                else "updated"
            )
        else:
            outcome = await mirror.save(prompt_set)
    except InvalidPromptSetError as exc:
        return SyncResult(version, "refused", prompt_set.config_hash, error=exc)
    except StorybenchPromptsError as exc:
        return SyncResult(version, "failed", prompt_set.config_hash, error=exc)
    except Exception as exc:  # a mirror's unexpected failure fails this version only
        error = MirrorUnavailableError(f"saving version {version} failed: {exc!r}")
        return SyncResult(version, "failed", prompt_set.config_hash, error=error)
    return SyncResult(version, outcome, prompt_set.config_hash, previous, prompt_set=prompt_set)


async def sync_versions(
    source: PromptRepository[Any],
    mirror: PromptMirror[Any],
    versions: Iterable[int] | None = None,
    *,
    concurrency: int = DEFAULT_SYNC_CONCURRENCY,
    dry_run: bool = False,
    activate: int | None = None,
    activate_highest: bool = False,
    activate_if_none: bool = True,
    on_result: Callable[[SyncResult], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> list[SyncResult]:
    """Sync the given versions (default: every published one); results in version order.

    A failure for one version does not stop the others; each result says what happened.
    ``activate`` names the version to make active afterwards (storybench's reader then finds
    it), if it synced; ``activate_highest`` activates the highest version synced (what
    ``sync --all`` does); otherwise, ``activate_if_none`` (the default) activates the highest
    version synced when the mirror has no active set at all, so storybench's reader always
    finds one after a first sync. With no ``versions`` (the full listing), a version the
    mirror holds but Directus no longer lists is marked withdrawn (outcome ``withdrawn``).
    Listing the versions and the activation are the steps whose failure raises.
    ``on_total`` is told how many results there will be, once that is known (after the
    listing), before the first ``on_result``.
    """
    withdrawn: list[int] = []
    if versions is None:
        listed = {info.version for info in await source.versions()}
        held = {info.version for info in await mirror.versions()}
        withdrawn = sorted(held - listed)
        versions = listed
    wanted = sorted(set(versions))
    if on_total is not None:
        on_total(len(wanted) + len(withdrawn))
    results: dict[int, SyncResult] = {}
    limiter = anyio.CapacityLimiter(max(1, concurrency))
    batch = await _read_batched(source, wanted)

    async def run(version: int) -> None:
        async with limiter:
            fetched = batch.get(version) if batch is not None else None
            result = await sync_one(source, mirror, version, dry_run=dry_run, fetched=fetched)
        results[version] = result
        if on_result is not None:
            on_result(result)

    async def withdraw(version: int) -> None:
        try:
            if not dry_run:
                await mirror.withdraw(version)
            result = SyncResult(version, "withdrawn")
        except StorybenchPromptsError as exc:
            result = SyncResult(version, "failed", error=exc)
        results[version] = result
        if on_result is not None:
            on_result(result)

    async with anyio.create_task_group() as tg:
        for version in wanted:
            tg.start_soon(run, version)
        for version in withdrawn:
            tg.start_soon(withdraw, version)
    if not dry_run:
        synced = [v for v in wanted if results[v].outcome in ("new", "updated", "unchanged")]
        if activate is not None:
            if activate in synced:  # refused or failed this time: the active set stays
                await mirror.activate(activate)
        elif activate_highest:
            # The latest published version, if it synced; if it failed or was refused this
            # time, the active set stays as it was rather than moving down to an older one.
            if wanted and max(wanted) in synced:
                await mirror.activate(max(wanted))
        elif activate_if_none and synced:
            # Saves may have interleaved in any order: the highest version is what ends active.
            await mirror.activate(max(synced), only_if_none=True)
    return [results[v] for v in sorted(results)]


async def _read_batched(
    source: PromptRepository[Any], wanted: list[int]
) -> dict[int, Fetched] | None:
    """Every wanted version in a few requests when the source reads many at once (None: it
    reads one at a time). A version absent from the answer is not published; a failure of
    the read stands for every version."""
    get_many = getattr(source, "get_many", None)
    if get_many is None or not wanted:
        return None
    try:
        found: dict[int, Fetched] = await get_many(wanted)
    except StorybenchPromptsError as exc:
        return dict.fromkeys(wanted, exc)
    noun = getattr(getattr(source, "kind", None), "noun", "set")
    return {
        version: found.get(version)
        or DirectusNotFoundError(
            f"no published {noun} version {version} in Directus", version=version
        )
        for version in wanted
    }
