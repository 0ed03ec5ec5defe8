"""Copying published versions from the source into a mirror, version by version."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import anyio

from ._exceptions import InvalidPromptSetError, PromptSetNotFoundError, StorybenchPromptsError
from ._models import PromptSet
from ._repository import PromptMirror, PromptRepository

__all__ = ["DEFAULT_SYNC_CONCURRENCY", "SyncOutcome", "SyncResult", "sync_versions"]

DEFAULT_SYNC_CONCURRENCY = 4

SyncOutcome = Literal["new", "updated", "unchanged", "refused", "not_found", "failed"]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What happened to one version. ``refused``: invalid content, the mirror kept its copy."""

    version: int
    outcome: SyncOutcome
    config_hash: str | None = None
    previous_hash: str | None = None
    error: StorybenchPromptsError | None = None
    prompt_set: PromptSet | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("new", "updated", "unchanged")


async def sync_one(
    source: PromptRepository, mirror: PromptMirror, version: int, *, dry_run: bool = False
) -> SyncResult:
    try:
        prompt_set = await source.get(version)
    except InvalidPromptSetError as exc:
        return SyncResult(version, "refused", error=exc)
    except PromptSetNotFoundError as exc:
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
    return SyncResult(version, outcome, prompt_set.config_hash, previous, prompt_set=prompt_set)


async def sync_versions(
    source: PromptRepository,
    mirror: PromptMirror,
    versions: Iterable[int] | None = None,
    *,
    concurrency: int = DEFAULT_SYNC_CONCURRENCY,
    dry_run: bool = False,
    activate: int | None = None,
    on_result: Callable[[SyncResult], None] | None = None,
) -> list[SyncResult]:
    """Sync the given versions (default: every published one); results in version order.

    A failure for one version does not stop the others; each result says what happened.
    ``activate`` names the version to make active afterwards (storybench's reader then finds
    it), if it synced. Listing the versions and the activation are the steps whose failure
    raises.
    """
    if versions is None:
        versions = [info.version for info in await source.versions()]
    wanted = sorted(set(versions))
    results: dict[int, SyncResult] = {}
    limiter = anyio.CapacityLimiter(max(1, concurrency))

    async def run(version: int) -> None:
        async with limiter:
            result = await sync_one(source, mirror, version, dry_run=dry_run)
        results[version] = result
        if on_result is not None:
            on_result(result)

    async with anyio.create_task_group() as tg:
        for version in wanted:
            tg.start_soon(run, version)
    if activate is not None and not dry_run and activate in results and results[activate].ok:
        await mirror.activate(activate)
    return [results[v] for v in wanted]
