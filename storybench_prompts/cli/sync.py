"""``sync``, ``warm`` and storybench's ``sync-prompts``: Directus into the mirror."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..content.kinds import PROMPT_SETS, ContentKind
from .app import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PARTIAL,
    KIND_CHOICES,
    State,
    cli,
    kinds_for,
    run_command,
    source_for,
    stack_for,
)

if TYPE_CHECKING:
    from ..ops.sync import SyncResult


def _sync_line(kind: ContentKind[Any], result: SyncResult) -> str:
    hashes = result.config_hash or "-"
    if result.outcome == "updated" and result.previous_hash:
        hashes = f"{result.previous_hash} -> {result.config_hash}"
    line = f"{kind.name} v{result.version}: {result.outcome} {hashes}"
    if result.drifted:
        line += " (content changed under the same version number)"
    if result.error is not None:
        line += f"\n    {str(result.error).replace(chr(10), chr(10) + '    ')}"
    return line


def _report_sync(
    state: State,
    outcomes: list[tuple[ContentKind[Any], list[SyncResult], int | None]],
    dry_run: bool,
) -> int:
    every: list[SyncResult] = []
    for kind, results, activated in outcomes:
        for result in results:
            if result.ok:
                state.say(_sync_line(kind, result))
            else:
                state.warn(_sync_line(kind, result))
        counts: dict[str, int] = {}
        for result in results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to sync"
        state.say(f"{'dry run: ' if dry_run else ''}{kind.name}: {summary}")
        if activated is not None:
            state.say(f"{kind.name} active: v{activated}")
        every.extend(results)
    failed = [r for r in every if not r.ok]
    if not failed:
        return EXIT_OK
    return EXIT_PARTIAL if len(failed) < len(every) else EXIT_FAILURE


async def _sync(
    state: State,
    kinds: list[ContentKind[Any]],
    versions: list[int] | None,
    *,
    latest_only: bool = False,
    dry_run: bool = False,
    progress: bool = False,
    activate: bool = False,
    activate_if_none: bool = False,
) -> list[tuple[ContentKind[Any], list[SyncResult], int | None]]:
    """Sync each kind, then (if asked) activate the highest version synced, as storybench's
    sync does. ``versions=None`` with ``latest_only`` false is the full listing."""
    from ..ops.sync import sync_versions

    outcomes = []
    async with stack_for(state, kinds) as views:
        for kind, source, mirror in views:
            wanted = versions
            if latest_only:
                wanted = [(await source.latest()).version]
            target = max(wanted) if activate and wanted and not dry_run else None
            with _progress(progress, kind.noun) as advance:
                results = await sync_versions(
                    source,
                    mirror,
                    wanted,
                    concurrency=state.settings.concurrency,
                    dry_run=dry_run,
                    activate=target,
                    activate_highest=activate and wanted is None and not dry_run,
                    activate_if_none=activate_if_none,
                    on_result=lambda _: advance(),
                )
            synced = {r.version for r in results if r.outcome in ("new", "updated", "unchanged")}
            listed = [r.version for r in results if r.outcome != "withdrawn"]
            if activate and wanted is None and listed and not dry_run:
                target = max(listed)
            # Only MongoDB has an active set for storybench's reader; say so only there.
            shown = target if mirror.name == "mongodb" and target in synced else None
            outcomes.append((kind, results, shown))
    return outcomes


@contextmanager
def _progress(enabled: bool, what: str) -> Iterator[Callable[[], None]]:
    """A progress bar on a terminal (``--all``); nothing at all in a pipe."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(f"syncing {what}s"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("sync", total=None)
        yield lambda: bar.advance(task)


@cli.command()
@click.option(
    "--version", "versions", type=int, multiple=True, help="Version to sync (repeatable)."
)
@click.option("--all", "all_", is_flag=True, help="Every published version.")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option(
    "--activate/--no-activate",
    default=True,
    show_default=True,
    help="Make the highest version synced the one storybench's reader finds (is_active).",
)
@click.option(
    "--kind",
    type=click.Choice(KIND_CHOICES),
    default=None,
    help="Which content: prompts, evaluations or all (default: all; prompts with --version).",
)
@click.pass_obj
def sync(
    state: State,
    versions: tuple[int, ...],
    all_: bool,
    dry_run: bool,
    activate: bool,
    kind: str | None,
) -> None:
    """Copy published versions from Directus into the mirror (default: the latest of each
    kind). With --all, versions Directus no longer publishes are marked withdrawn."""
    if versions and all_:
        raise click.UsageError("--version and --all exclude each other")
    kinds = kinds_for(kind or ("prompts" if versions else "all"))
    progress = all_ and sys.stderr.isatty() and not state.quiet
    outcomes = run_command(
        state,
        "sync",
        lambda: _sync(
            state,
            kinds,
            list(versions) if versions else None,
            latest_only=not versions and not all_,
            dry_run=dry_run,
            progress=progress,
            activate=activate,
        ),
    )
    sys.exit(_report_sync(state, outcomes, dry_run))


@cli.command()
@click.option(
    "--version", "versions", type=int, multiple=True, help="Version to warm (repeatable)."
)
@click.option(
    "--kind",
    type=click.Choice(KIND_CHOICES),
    default=None,
    help="Which content (default: all; prompts with --version).",
)
@click.pass_obj
def warm(state: State, versions: tuple[int, ...], kind: str | None) -> None:
    """Make sure the mirror holds every published version (or those given)."""
    kinds = kinds_for(kind or ("prompts" if versions else "all"))
    outcomes = run_command(
        state,
        "warm",
        lambda: _sync(state, kinds, list(versions) or None, activate_if_none=True),
    )
    every: list[SyncResult] = []
    for content_kind, results, _ in outcomes:
        added = [r for r in results if r.outcome in ("new", "updated")]
        for r in added:
            state.say(f"added {content_kind.name} v{r.version} ({r.outcome}, {r.config_hash})")
        held = sum(1 for r in results if r.outcome in ("new", "updated", "unchanged"))
        state.say(
            f"mirror holds {held} of {len(results)} {content_kind.noun} version(s); "
            f"added {len(added)}"
        )
        for r in results:
            if not r.ok:
                state.warn(_sync_line(content_kind, r))
        every.extend(results)
    failed = sum(1 for r in every if not r.ok)
    sys.exit(EXIT_OK if not failed else EXIT_PARTIAL if failed < len(every) else EXIT_FAILURE)


@cli.command("sync-prompts")
@click.option("-v", "--version", "version", type=int, default=None, help="Version to sync.")
@click.option("--list-versions", is_flag=True, help="List published versions.")
@click.option("--test-connection", is_flag=True, help="Check Directus answers.")
@click.pass_obj
def sync_prompts(
    state: State, version: int | None, list_versions: bool, test_connection: bool
) -> None:
    """storybench's command: sync the latest (or given) version; exits non-zero on failure."""
    if test_connection:

        async def probe() -> None:
            async with source_for(state) as source:
                await source.test_connection()

        run_command(state, "connection test", probe)
        state.data("Directus connection OK")
        return
    if list_versions:

        async def listing() -> Any:
            async with source_for(state) as source:
                return await source.list_versions()

        for info in run_command(state, "listing versions", listing):
            state.data(f"v{info.version}: {info.version_name or ''}")
        return
    outcomes = run_command(
        state,
        "sync",
        lambda: _sync(
            state,
            [PROMPT_SETS],
            [version] if version else None,
            latest_only=version is None,
            activate=True,
        ),
    )
    sys.exit(_report_sync(state, outcomes, False))
