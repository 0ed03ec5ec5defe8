"""``storybench-prompts``: sync the mirror, warm the cache, and show what would be served.

A thin shell over the library. Exit codes: 0 success, 1 failure, 2 usage error,
3 partial sync (some versions refused or failed, the others synced).

Start-up matters here (a lookup should feel instant): the library's modules are imported
inside the commands that use them, JSON and plain lines are printed with ``click.echo``, and
``rich`` is loaded only for what a person reads on a terminal (tables, the progress bar).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import click

from .._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusConnectionError,
    DirectusTimeoutError,
    MirrorUnavailableError,
    StorybenchPromptsError,
)
from ..content.kinds import EVALUATION_SETS, KINDS, PROMPT_SETS, ContentKind

if TYPE_CHECKING:
    from .._settings import Settings
    from ..content.models import VersionedContent
    from ..mirrors.base import PromptMirror
    from ..ops.sync import SyncResult
    from ..sources.directus import DirectusSource

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "cli", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

T = TypeVar("T")

KIND_CHOICES = ["prompts", "evaluations", "all"]


class _State:
    def __init__(self, settings: Settings, verbose: bool, quiet: bool) -> None:
        self.settings = settings
        self.verbose = verbose
        self.quiet = quiet

    def secrets(self) -> list[str]:
        from .._redact import uri_password

        found = []
        if self.settings.directus_token is not None:
            found.append(self.settings.directus_token.get_secret_value())
        if self.settings.mongodb_uri is not None:
            uri = self.settings.mongodb_uri.get_secret_value()
            found.append(uri)
            password = uri_password(uri)
            if password:
                found.append(password)
        return sorted((s for s in found if s), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def say(self, line: str) -> None:
        """A line for the person running the command (suppressed by --quiet)."""
        if not self.quiet:
            click.echo(self.redact(line))

    def data(self, line: str) -> None:
        """Requested output: always printed."""
        click.echo(self.redact(line))

    def warn(self, line: str) -> None:
        click.echo(self.redact(line), err=True)


class _RedactSecrets(logging.Filter):
    """Masks every configured secret in log records, whatever logged them."""

    def __init__(self, state: _State) -> None:
        super().__init__()
        self._state = state

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._state.redact(record.getMessage()), None
        return True


def _hint(exc: BaseException) -> str:
    if isinstance(exc, DirectusAuthenticationError):
        return "check DIRECTUS_TOKEN"
    if isinstance(exc, DirectusConnectionError | DirectusTimeoutError):
        return "check DIRECTUS_URL and that Directus is running"
    if isinstance(exc, MirrorUnavailableError):
        return "check MONGODB_URI or STORYBENCH_PROMPTS_MIRROR_DIR"
    if isinstance(exc, ConfigurationError):
        return "see `storybench-prompts --help` and docs/configuration.md"
    return ""


def _fail(state: _State, what: str, exc: BaseException, code: int = EXIT_FAILURE) -> NoReturn:
    if state.verbose:
        state.warn("".join(traceback.format_exception(exc)))
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = _hint(exc)
    state.warn(f"error: {what}: {first}" + (f" ({hint})" if hint and hint not in first else ""))
    sys.exit(code)


def _run(state: _State, what: str, fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except StorybenchPromptsError as exc:
        _fail(state, what, exc)


@contextmanager
def _settings_errors() -> Iterator[None]:
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        click.echo(f"error: invalid settings: {problems}", err=True)
        sys.exit(EXIT_USAGE)


def _kinds(choice: str) -> list[ContentKind[Any]]:
    return [PROMPT_SETS, EVALUATION_SETS] if choice == "all" else [KINDS[choice]]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read settings from this file (default: ./.env if present).",
)
@click.option("--directus-url", default=None, help="Overrides DIRECTUS_URL.")
@click.option(
    "--mirror-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Overrides STORYBENCH_PROMPTS_MIRROR_DIR (file mirror).",
)
@click.option(
    "--fallback-after",
    type=float,
    default=None,
    help="Seconds to wait for Directus before serving the mirror copy.",
)
@click.version_option(package_name="storybench-prompts")
@click.pass_context
def cli(
    ctx: click.Context,
    verbose: bool,
    quiet: bool,
    env_file: Path | None,
    directus_url: str | None,
    mirror_dir: Path | None,
    fallback_after: float | None,
) -> None:
    """Serve storybench's prompt sets and evaluation criteria from Directus, an in-memory
    cache and a mirror.

    Settings come from flags, the environment (DIRECTUS_URL, DIRECTUS_TOKEN, MONGODB_URI,
    STORYBENCH_PROMPTS_*) and a .env file. Exit codes: 0 ok, 1 failure, 2 usage error,
    3 partial sync.
    """
    from .._settings import Settings

    if env_file is not None and not env_file.is_file():
        raise click.BadParameter(f"{env_file} does not exist", param_hint="--env-file")
    overrides: dict[str, Any] = {}
    if directus_url is not None:
        overrides["directus_url"] = directus_url
    if mirror_dir is not None:
        overrides["mirror_dir"] = mirror_dir
    if fallback_after is not None:
        overrides["fallback_after"] = fallback_after
    with _settings_errors():
        settings = Settings(_env_file=env_file or ".env", **overrides)
    state = _State(settings, verbose, quiet)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactSecrets(state))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    for noisy in ("pymongo", "httpcore", "httpx", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = state


def _source(state: _State) -> DirectusSource[Any]:
    from .._compose import build_source

    try:
        return build_source(state.settings)
    except ConfigurationError as exc:
        _fail(state, "configuration", exc)


def _mirror(state: _State, kind: ContentKind[Any] = PROMPT_SETS) -> PromptMirror[Any]:
    from .._compose import build_mirror

    try:
        return build_mirror(state.settings, kind)
    except ConfigurationError as exc:
        _fail(state, "configuration", exc)


@asynccontextmanager
async def _stack(
    state: _State, kinds: list[ContentKind[Any]]
) -> AsyncIterator[list[tuple[ContentKind[Any], DirectusSource[Any], PromptMirror[Any]]]]:
    """One Directus client and one mirror connection, viewed per kind."""
    mirror = _mirror(state)
    source = _source(state)
    try:
        yield [(k, source.for_kind(k), mirror.for_kind(k)) for k in kinds]  # type: ignore[attr-defined]
    finally:
        with anyio.CancelScope(shield=True):
            await source.aclose()
            await mirror.aclose()


# -- sync ---------------------------------------------------------------------------------


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
    state: _State,
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
    state: _State,
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
    async with _stack(state, kinds) as views:
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
    state: _State,
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
    kinds = _kinds(kind or ("prompts" if versions else "all"))
    progress = all_ and sys.stderr.isatty() and not state.quiet
    outcomes = _run(
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
def warm(state: _State, versions: tuple[int, ...], kind: str | None) -> None:
    """Make sure the mirror holds every published version (or those given)."""
    kinds = _kinds(kind or ("prompts" if versions else "all"))
    outcomes = _run(
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


# -- watch --------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=1.0),
    default=300.0,
    show_default=True,
    help="Seconds between full reconciles (besides those that changes trigger).",
)
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="all", show_default=True)
@click.pass_obj
def watch(state: _State, interval: float, kind: str) -> None:
    """Keep the mirror in step with Directus until stopped (Ctrl-C or SIGTERM).

    A full reconcile at start, after every reconnection of Directus's realtime channel, on
    every change it reports, and every --interval seconds; one line per change applied.
    """
    import datetime

    from ..ops.watch import MirrorWatcher, WatchedKind

    kinds = _kinds(kind)

    def report(line: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
        state.data(f"{now} {line}")

    async def run() -> None:
        async with _stack(state, kinds) as views:
            watcher = MirrorWatcher(
                [WatchedKind(k, s, m) for k, s, m in views],
                report=report,
                interval=interval,
                concurrency=state.settings.concurrency,
            )
            async with anyio.create_task_group() as tg:
                if state.settings.realtime != "off" and state.settings.directus_token:
                    from ..sources.realtime import RealtimeChannel

                    channel = RealtimeChannel(
                        views[0][1].url,
                        state.settings.directus_token,
                        [c for k in kinds for c in k.related_collections],
                        on_change=lambda collection, _e, _i: watcher.changed(collection),
                        on_connected=lambda: watcher.changed(None),
                        mode=state.settings.realtime,
                    )
                    tg.start_soon(channel.run)
                tg.start_soon(watcher.run)
                # SIGINT and SIGTERM cancel the work at an await, so a stop never leaves a
                # version half-written (each write is whole or not at all).
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        report(f"stopping ({signal.Signals(signum).name})")
                        tg.cancel_scope.cancel()
                        break

    report(
        f"watching {', '.join(k.noun + 's' for k in kinds)}; full reconcile every {interval:g} s"
    )
    _run(state, "watch", run)
    report("stopped")


# -- versions -----------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="prompts", show_default=True)
@click.pass_obj
def versions(state: _State, as_json: bool, kind: str) -> None:
    """Published versions in Directus beside what the mirror holds."""
    from ..ops.checks import compare_versions

    kinds = _kinds(kind)

    async def run() -> Any:
        async with _stack(state, kinds) as views:
            return [
                (k, await compare_versions(s, m, concurrency=state.settings.concurrency))
                for k, s, m in views
            ]

    tables = _run(state, "listing versions", run)
    if as_json:
        data = [
            {
                "kind": k.name,
                "version": r.version,
                "version_name": r.version_name,
                "directus_hash": r.directus_hash,
                "mirror_hash": r.mirror_hash,
                "state": r.state,
                "error": r.error,
            }
            for k, rows in tables
            for r in rows
        ]
        if len(kinds) == 1:
            for row in data:
                del row["kind"]
        state.data(json.dumps(data, indent=2))
        return
    marks = {
        "same": "in mirror",
        "missing": "MISSING from mirror",
        "differs": "DIFFERS",
        "mirror_only": "mirror only (not published)",
        "unknown": "directus error",
    }
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    for k, rows in tables:
        table = Table("version", "name", "directus hash", "mirror hash", "state", title=k.noun)
        for r in rows:
            table.add_row(
                str(r.version),
                r.version_name or "",
                r.directus_hash or "-",
                r.mirror_hash or "-",
                marks[r.state] + (f": {r.error}" if r.error else ""),
            )
        console.print(table)


# -- get ----------------------------------------------------------------------------------


def _print_readable(state: _State, kind: ContentKind[Any], content: VersionedContent) -> None:
    p = content.provenance
    name = f" - {content.version_name}" if content.version_name else ""
    state.data(f"{kind.title} v{content.version}{name}")
    state.data(f"config_hash {content.config_hash}   directus_id {content.directus_id}")
    if p is not None:
        flags = [f for f, on in (("stale", p.stale), ("hedged", p.hedged)) if on]
        if p.origin_error:
            flags.append(f"Directus failed: {p.origin_error}")
        state.data(
            f"served from {p.source} (origin {p.origin}), fetched {p.fetched_at:%Y-%m-%d %H:%M:%S}"
            f" UTC, {p.age:.1f} s ago{' [' + ', '.join(flags) + ']' if flags else ''}"
        )
    for line in kind.render(content):
        state.data(line)


@cli.command()
@click.argument("version", required=False)
@click.option("--hash", "config_hash", default=None, help="The config_hash a run recorded.")
@click.option("--json", "as_json", is_flag=True, help="storybench's flat format plus provenance.")
@click.option(
    "--source",
    "source_name",
    type=click.Choice(["auto", "directus", "mirror"]),
    default="auto",
    show_default=True,
    help="auto: cache, Directus, mirror fallback; or one source only.",
)
@click.option(
    "--kind", type=click.Choice(["prompts", "evaluations"]), default="prompts", show_default=True
)
@click.pass_obj
def get(
    state: _State,
    version: str | None,
    config_hash: str | None,
    as_json: bool,
    source_name: str,
    kind: str,
) -> None:
    """Print a set: VERSION is a number or `latest`; or --hash HASH for exactly the content
    a run recorded, even after the version was edited or withdrawn in Directus."""
    if (version is None) == (config_hash is None):
        raise click.UsageError("give a VERSION (a number or `latest`) or --hash, not both")
    if version is not None and version != "latest" and not version.isdigit():
        raise click.BadParameter("a version number or `latest`", param_hint="VERSION")
    if config_hash is not None and source_name == "directus":
        raise click.UsageError("--hash reads the mirror (Directus keeps no old content)")
    number = None if version in (None, "latest") else int(version)
    content_kind = KINDS[kind]

    async def run() -> VersionedContent:
        served: VersionedContent
        if source_name == "mirror" or config_hash is not None:
            async with _mirror(state, content_kind) as mirror:
                if config_hash is not None:
                    served = await mirror.get_by_hash(config_hash)
                else:
                    served = await (mirror.latest() if number is None else mirror.get(number))
                return served
        if source_name == "directus":
            async with _source(state).for_kind(content_kind) as source:
                served = await (source.latest() if number is None else source.get(number))
                return served
        from .._compose import build_stack

        async with build_stack(state.settings) as stack:
            repo = stack.repository(content_kind)
            served = await (repo.latest() if number is None else repo.get(number))
            return served

    what = f"{content_kind.noun} {config_hash or version}"
    content = _run(state, f"reading {what}", run)
    if as_json:
        state.data(json.dumps(content.to_json_dict(), indent=2, ensure_ascii=False))
    else:
        _print_readable(state, content_kind, content)


# -- check --------------------------------------------------------------------------------


@cli.command()
@click.pass_obj
def check(state: _State) -> None:
    """Directus, token, schema, mirror and freshness, for both kinds, and the realtime
    channel: one line per check."""
    from ..ops.checks import check_realtime, run_checks

    async def run() -> Any:
        async with _stack(state, [PROMPT_SETS, EVALUATION_SETS]) as views:
            results = await run_checks([(s, m) for _k, s, m in views])
            if state.settings.realtime != "off" and state.settings.directus_token:
                results.append(
                    await check_realtime(
                        views[0][1].url,
                        state.settings.directus_token,
                        [*PROMPT_SETS.related_collections, *EVALUATION_SETS.related_collections],
                        mode=state.settings.realtime,
                    )
                )
            return results

    failed = False
    for r in _run(state, "check", run):
        what = f"{r.name} ({r.kind})" if r.kind else r.name
        line = f"{'ok  ' if r.ok else 'FAIL'} {what:<25} {r.detail}"
        for note in r.notes:
            line += f"\n     note: {note}"
        if r.ok:
            state.data(line)
        else:
            state.warn(line)
            failed = True
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)


@cli.command("config")
@click.pass_obj
def show_config(state: _State) -> None:
    """Print the effective settings (secrets masked)."""
    data = state.settings.describe()  # masks the token and the MongoDB password
    state.data(json.dumps(data, indent=2, default=str))


# -- storybench's spelling ----------------------------------------------------------------


@cli.command("sync-prompts")
@click.option("-v", "--version", "version", type=int, default=None, help="Version to sync.")
@click.option("--list-versions", is_flag=True, help="List published versions.")
@click.option("--test-connection", is_flag=True, help="Check Directus answers.")
@click.pass_obj
def sync_prompts(
    state: _State, version: int | None, list_versions: bool, test_connection: bool
) -> None:
    """storybench's command: sync the latest (or given) version; exits non-zero on failure."""
    if test_connection:

        async def probe() -> None:
            async with _source(state) as source:
                await source.test_connection()

        _run(state, "connection test", probe)
        state.data("Directus connection OK")
        return
    if list_versions:

        async def listing() -> Any:
            async with _source(state) as source:
                return await source.list_versions()

        for info in _run(state, "listing versions", listing):
            state.data(f"v{info.version}: {info.version_name or ''}")
        return
    outcomes = _run(
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


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="storybench-prompts", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
