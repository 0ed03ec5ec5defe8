"""``sync``, ``warm`` and storybench's ``sync-prompts``: Directus into the mirror."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from .._exceptions import InvalidPromptSetError
from ..content.kinds import PROMPT_SETS, ContentKind
from .app import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PARTIAL,
    KIND_CHOICES,
    State,
    cli,
    fail,
    first_line,
    kinds_for,
    require_directus,
    run_command,
    setting_error,
    source_for,
    stack_for,
)
from .waiting import DirectusWait, TimedSource, with_waiting_notice

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


def _result_json(kind: ContentKind[Any], result: SyncResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": kind.name,
        "version": result.version,
        "outcome": result.outcome,
        "ok": result.ok,
        "config_hash": result.config_hash,
        "previous_hash": result.previous_hash,
        "drifted": result.drifted,
        "error": first_line(result.error) if result.error is not None else None,
    }
    if isinstance(result.error, InvalidPromptSetError):
        data["problems"] = [{"path": p.path, "message": p.message} for p in result.error.problems]
    return data


def _counts(results: list[SyncResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return dict(sorted(counts.items()))


def _exit_code(state: State, what: str, every: list[SyncResult]) -> int:
    """0, 3 (some failed) or 1 (all failed), with one error line on stderr naming the failed
    versions; 2 when a failure is a misconfiguration (a rejected token...)."""
    failed = [r for r in every if not r.ok]
    if not failed:
        return EXIT_OK
    for result in failed:
        if result.error is not None and setting_error(result.error) is not None:
            fail(state, what, result.error)
    names = ", ".join(f"v{r.version} {r.outcome}" for r in failed[:5])
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    state.warn(
        f"error: {what}: {len(failed)} of {len(every)} version(s) not synced ({names}{more})"
    )
    return EXIT_PARTIAL if len(failed) < len(every) else EXIT_FAILURE


def _report_sync(
    state: State,
    outcomes: list[tuple[ContentKind[Any], list[SyncResult], int | None]],
    dry_run: bool,
    as_json: bool = False,
) -> int:
    every: list[SyncResult] = []
    if as_json:
        state.json(
            {
                "dry_run": dry_run,
                "ok": all(r.ok for _k, results, _a in outcomes for r in results),
                "kinds": [
                    {
                        "kind": kind.name,
                        "counts": _counts(results),
                        "active": activated,
                        "results": [_result_json(kind, r) for r in results],
                    }
                    for kind, results, activated in outcomes
                ],
            }
        )
    for kind, results, activated in outcomes:
        every.extend(results)
        if as_json:
            continue
        for result in results:
            if result.ok:
                state.say(_sync_line(kind, result))
            else:
                state.data(_sync_line(kind, result))  # a report line: stdout, even with -q
        counts = _counts(results)
        summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing to sync"
        state.say(f"{'dry run: ' if dry_run else ''}{kind.name}: {summary}")
        if activated is not None:
            state.say(f"{kind.name} active: v{activated}")
    return _exit_code(state, "sync", every)


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
    sync does. ``versions=None`` with ``latest_only`` false is the full listing. Says
    ``waiting for Directus...`` on stderr while Directus takes more than a second."""
    from ..ops.sync import sync_versions

    wait = DirectusWait()

    async def run() -> list[tuple[ContentKind[Any], list[SyncResult], int | None]]:
        outcomes = []
        async with stack_for(state, kinds) as views:
            for kind, directus, mirror in views:
                source = TimedSource(directus, wait)
                wanted = versions
                if latest_only:
                    wanted = [(await source.latest()).version]
                target = max(wanted) if activate and wanted and not dry_run else None
                with _progress(progress, kind.noun, wait) as (advance, set_total):
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
                        on_total=set_total,
                    )
                synced = {
                    r.version for r in results if r.outcome in ("new", "updated", "unchanged")
                }
                listed = [r.version for r in results if r.outcome != "withdrawn"]
                if activate and wanted is None and listed and not dry_run:
                    target = max(listed)
                # Only MongoDB has an active set for storybench's reader; say so only there.
                shown = target if mirror.name == "mongodb" and target in synced else None
                outcomes.append((kind, results, shown))
        return outcomes

    return await with_waiting_notice(state, wait, run)


@contextmanager
def _progress(
    enabled: bool, what: str, wait: DirectusWait
) -> Iterator[tuple[Callable[[], None], Callable[[int], None]]]:
    """A progress bar on a terminal (``--all``), with its total once the listing gives it and
    the wait for Directus in it; nothing at all in a pipe."""
    if not enabled:
        yield (lambda: None), (lambda _total: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(f"syncing {what}s"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("sync", total=None, note="")
        wait.sink = lambda text: bar.update(task, note=text or "")
        try:
            yield (lambda: bar.advance(task)), (lambda total: bar.update(task, total=total))
        finally:
            wait.sink = None


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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def sync(
    state: State,
    versions: tuple[int, ...],
    all_: bool,
    dry_run: bool,
    activate: bool,
    kind: str | None,
    as_json: bool,
) -> None:
    """Copy published versions from Directus into the mirror (default: the latest of each
    kind). With --all, versions Directus no longer publishes are marked withdrawn."""
    if versions and all_:
        raise click.UsageError("--version and --all exclude each other")
    require_directus(state)
    kinds = kinds_for(kind or ("prompts" if versions else "all"))
    progress = all_ and sys.stderr.isatty() and not state.quiet and not as_json
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
    sys.exit(_report_sync(state, outcomes, dry_run, as_json))


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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def warm(state: State, versions: tuple[int, ...], kind: str | None, as_json: bool) -> None:
    """Make sure the mirror holds every published version (or those given)."""
    require_directus(state)
    kinds = kinds_for(kind or ("prompts" if versions else "all"))
    outcomes = run_command(
        state,
        "warm",
        lambda: _sync(state, kinds, list(versions) or None, activate_if_none=True),
    )
    every: list[SyncResult] = []
    report = []
    for content_kind, results, _ in outcomes:
        added = [r for r in results if r.outcome in ("new", "updated")]
        held = sum(1 for r in results if r.outcome in ("new", "updated", "unchanged"))
        every.extend(results)
        report.append(
            {
                "kind": content_kind.name,
                "held": held,
                "versions": len(results),
                "added": [_result_json(content_kind, r) for r in added],
                "failed": [_result_json(content_kind, r) for r in results if not r.ok],
            }
        )
        if as_json:
            continue
        for r in added:
            state.say(f"added {content_kind.name} v{r.version} ({r.outcome}, {r.config_hash})")
        state.say(
            f"mirror holds {held} of {len(results)} {content_kind.noun} version(s); "
            f"added {len(added)}"
        )
        for r in results:
            if not r.ok:
                state.data(_sync_line(content_kind, r))
    if as_json:
        state.json({"ok": all(r.ok for r in every), "kinds": report})
    sys.exit(_exit_code(state, "warm", every))


@cli.command("sync-prompts")
@click.option("-v", "--version", "version", type=int, default=None, help="Version to sync.")
@click.option("--list-versions", is_flag=True, help="List published versions.")
@click.option("--test-connection", is_flag=True, help="Check Directus answers.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def sync_prompts(
    state: State, version: int | None, list_versions: bool, test_connection: bool, as_json: bool
) -> None:
    """storybench's command: sync the latest (or given) version; exits non-zero on failure."""
    require_directus(state)
    if test_connection:

        async def probe() -> None:
            async with source_for(state) as source:
                await source.test_connection()

        run_command(state, "connection test", probe)
        if as_json:
            state.json({"ok": True, "url": state.settings.directus_url})
        else:
            state.data("Directus connection OK")
        return
    if list_versions:

        async def listing() -> Any:
            async with source_for(state) as source:
                return await source.list_versions()

        infos = run_command(state, "listing versions", listing)
        if as_json:
            state.json([{"version": i.version, "version_name": i.version_name} for i in infos])
            return
        for info in infos:
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
    sys.exit(_report_sync(state, outcomes, False, as_json))
