"""``storybench-prompts``: sync the mirror, warm the cache, and show what would be served.

A thin shell over the library. Exit codes: 0 success, 1 failure, 2 usage error,
3 partial sync (some versions refused or failed, the others synced).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ._caching import CachingRepository
from ._directus import DirectusSource
from ._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusConnectionError,
    DirectusTimeoutError,
    MirrorUnavailableError,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from ._models import PromptSet
from ._mongo_mirror import MongoMirror
from ._operations import compare_versions, run_checks
from ._repository import PromptMirror
from ._settings import Settings, build_mirror, build_source
from ._sync import SyncResult, sync_versions

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "cli", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    def __init__(self, settings: Settings, verbose: bool, quiet: bool) -> None:
        self.settings = settings
        self.verbose = verbose
        self.quiet = quiet

    def secrets(self) -> list[str]:
        found = []
        if self.settings.directus_token is not None:
            found.append(self.settings.directus_token.get_secret_value())
        if self.settings.mongodb_uri is not None:
            uri = self.settings.mongodb_uri.get_secret_value()
            found.append(uri)
            from urllib.parse import urlsplit

            try:
                password = urlsplit(uri).password
            except ValueError:
                password = None
            if password:
                found.append(password)
        return [s for s in found if s]


class _RedactSecrets(logging.Filter):
    """Masks every configured secret in log records, whatever logged them."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted(secrets, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self._secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, None
        return True


def _redact(text: str, state: _State) -> str:
    for secret in sorted(state.secrets(), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


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
        err.print(_redact("".join(traceback.format_exception(exc)), state), markup=False)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = _hint(exc)
    sentence = f"error: {what}: {first}" + (f" ({hint})" if hint and hint not in first else "")
    err.print(_redact(sentence, state), markup=False)
    sys.exit(code)


def _run(state: _State, what: str, fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except StorybenchPromptsError as exc:
        _fail(state, what, exc)


@contextmanager
def _settings_errors() -> Iterator[None]:
    try:
        yield
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"error: invalid settings: {problems}", markup=False)
        sys.exit(EXIT_USAGE)


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
    """Serve storybench's prompt sets from Directus, an in-memory cache and a mirror.

    Settings come from flags, the environment (DIRECTUS_URL, DIRECTUS_TOKEN, MONGODB_URI,
    STORYBENCH_PROMPTS_*) and a .env file. Exit codes: 0 ok, 1 failure, 2 usage error,
    3 partial sync.
    """
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
    handler.addFilter(_RedactSecrets(state.secrets()))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    for noisy in ("pymongo", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = state


def _build(state: _State) -> tuple[DirectusSource, PromptMirror]:
    try:
        mirror = build_mirror(state.settings)
        return build_source(state.settings), mirror
    except ConfigurationError as exc:
        _fail(state, "configuration", exc)


def _mirror_only(state: _State) -> PromptMirror:
    try:
        return build_mirror(state.settings)
    except ConfigurationError as exc:
        _fail(state, "configuration", exc)


# -- sync ---------------------------------------------------------------------------------


def _sync_line(result: SyncResult) -> str:
    hashes = result.config_hash or "-"
    if result.outcome == "updated" and result.previous_hash:
        hashes = f"{result.previous_hash} -> {result.config_hash}"
    line = f"v{result.version}: {result.outcome} {hashes}"
    if result.error is not None:
        line += f"\n    {str(result.error).replace(chr(10), chr(10) + '    ')}"
    return line


def _report_sync(
    state: _State, results: list[SyncResult], dry_run: bool, activated: int | None = None
) -> int:
    for result in results:
        if not state.quiet or not result.ok:
            (out if result.ok else err).print(_redact(_sync_line(result), state), markup=False)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    if not state.quiet:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to sync"
        out.print(f"{'dry run: ' if dry_run else ''}{summary}", markup=False)
        if activated is not None:
            out.print(f"active: v{activated}", markup=False)
    failed = [r for r in results if not r.ok]
    if not failed:
        return EXIT_OK
    return EXIT_PARTIAL if len(failed) < len(results) else EXIT_FAILURE


async def _sync(
    state: _State,
    versions: list[int] | None,
    *,
    latest_only: bool = False,
    dry_run: bool = False,
    progress: bool = False,
    activate: bool = False,
) -> tuple[list[SyncResult], int | None]:
    """Sync, then (if asked) activate the highest version synced, as storybench's sync does."""
    source, mirror = _build(state)
    async with source, mirror:
        if latest_only:
            versions = [(await source.latest()).version]
        if versions is None:
            versions = [info.version for info in await source.versions()]
        target = max(versions) if activate and versions and not dry_run else None
        # A progress bar on a terminal (--all); nothing extra in a pipe. `disable` keeps one call.
        with Progress(
            TextColumn("syncing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
            disable=not progress,
        ) as bar:
            task = bar.add_task("sync", total=len(versions))
            results = await sync_versions(
                source,
                mirror,
                versions,
                concurrency=state.settings.concurrency,
                dry_run=dry_run,
                activate=target,
                on_result=lambda _: bar.advance(task),
            )
    synced = {r.version for r in results if r.ok}
    # Only MongoDB has an active set for storybench's reader; say so only where it exists.
    tracks_active = isinstance(mirror, MongoMirror)
    return results, target if tracks_active and target in synced else None


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
@click.pass_obj
def sync(
    state: _State, versions: tuple[int, ...], all_: bool, dry_run: bool, activate: bool
) -> None:
    """Copy published versions from Directus into the mirror (default: the latest)."""
    if versions and all_:
        raise click.UsageError("--version and --all exclude each other")
    progress = all_ and err.is_terminal and not state.quiet
    results, activated = _run(
        state,
        "sync",
        lambda: _sync(
            state,
            list(versions) if versions else None,
            latest_only=not versions and not all_,
            dry_run=dry_run,
            progress=progress,
            activate=activate,
        ),
    )
    sys.exit(_report_sync(state, results, dry_run, activated))


@cli.command()
@click.option(
    "--version", "versions", type=int, multiple=True, help="Version to warm (repeatable)."
)
@click.pass_obj
def warm(state: _State, versions: tuple[int, ...]) -> None:
    """Make sure the mirror holds every published version (or those given)."""
    results, _ = _run(state, "warm", lambda: _sync(state, list(versions) or None))
    added = [r for r in results if r.outcome in ("new", "updated")]
    if not state.quiet:
        for r in added:
            out.print(f"added v{r.version} ({r.outcome}, {r.config_hash})", markup=False)
        held = sum(1 for r in results if r.ok)
        out.print(f"mirror holds {held} of {len(results)} version(s); added {len(added)}")
    for r in results:
        if not r.ok:
            err.print(_redact(_sync_line(r), state), markup=False)
    failed = sum(1 for r in results if not r.ok)
    sys.exit(EXIT_OK if not failed else EXIT_PARTIAL if failed < len(results) else EXIT_FAILURE)


# -- versions -----------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def versions(state: _State, as_json: bool) -> None:
    """Published versions in Directus beside what the mirror holds."""

    async def run() -> Any:
        source, mirror = _build(state)
        async with source, mirror:
            return await compare_versions(source, mirror, concurrency=state.settings.concurrency)

    rows = _run(state, "listing versions", run)
    if as_json:
        out.print_json(
            data=[
                {
                    "version": r.version,
                    "version_name": r.version_name,
                    "directus_hash": r.directus_hash,
                    "mirror_hash": r.mirror_hash,
                    "state": r.state,
                    "error": r.error,
                }
                for r in rows
            ]
        )
        return
    table = Table("version", "name", "directus hash", "mirror hash", "state")
    marks = {
        "same": "in mirror",
        "missing": "MISSING from mirror",
        "differs": "DIFFERS",
        "mirror_only": "mirror only (not published)",
        "unknown": "directus error",
    }
    for r in rows:
        table.add_row(
            str(r.version),
            r.version_name or "",
            r.directus_hash or "-",
            r.mirror_hash or "-",
            marks[r.state] + (f": {r.error}" if r.error else ""),
        )
    out.print(table)


# -- get ----------------------------------------------------------------------------------


def _print_readable(prompt_set: PromptSet) -> None:
    p = prompt_set.provenance
    out.print(
        f"[bold]Prompt set v{prompt_set.version}[/bold]"
        f"{f' — {prompt_set.version_name}' if prompt_set.version_name else ''}"
    )
    out.print(f"config_hash {prompt_set.config_hash}   directus_id {prompt_set.directus_id}")
    if p is not None:
        flags = [f for f, on in (("stale", p.stale), ("hedged", p.hedged)) if on]
        out.print(
            f"served from {p.source} (origin {p.origin}), fetched {p.fetched_at:%Y-%m-%d %H:%M:%S}"
            f" UTC, {p.age:.1f} s ago{' [' + ', '.join(flags) + ']' if flags else ''}",
            markup=False,
        )
    for name, prompts in prompt_set.sequences.items():
        out.print(f"\n[bold]{name}[/bold] ({len(prompts)} prompts)")
        for i, prompt in enumerate(prompts, 1):
            out.print(f"  {i}. {prompt.name}: {prompt.text}", markup=False)


@cli.command()
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="storybench's flat format plus provenance.")
@click.option(
    "--source",
    "source_name",
    type=click.Choice(["auto", "directus", "mirror"]),
    default="auto",
    show_default=True,
    help="auto: cache, Directus, mirror fallback; or one source only.",
)
@click.pass_obj
def get(state: _State, version: str, as_json: bool, source_name: str) -> None:
    """Print a prompt set: VERSION is a number or `latest`."""
    if version != "latest" and not version.isdigit():
        raise click.BadParameter("a version number or `latest`", param_hint="VERSION")
    number = None if version == "latest" else int(version)

    async def run() -> PromptSet:
        if source_name == "mirror":
            mirror = _mirror_only(state)
            async with mirror:
                return await (mirror.latest() if number is None else mirror.get(number))
        source, mirror = _build(state)
        if source_name == "directus":
            await mirror.aclose()
            async with source:
                return await (source.latest() if number is None else source.get(number))
        async with CachingRepository(source, mirror, policy=state.settings.cache_policy()) as repo:
            return await (repo.latest() if number is None else repo.get(number))

    try:
        prompt_set = anyio.run(run)
    except PromptSetNotFoundError as exc:
        _fail(state, f"prompt set {version}", exc)
    except StorybenchPromptsError as exc:
        _fail(state, f"reading prompt set {version}", exc)
    if as_json:
        out.print_json(data=prompt_set.to_json_dict())
    else:
        _print_readable(prompt_set)


# -- check --------------------------------------------------------------------------------


@cli.command()
@click.pass_obj
def check(state: _State) -> None:
    """Directus, token, schema, mirror and freshness: one line per check."""

    async def run() -> Any:
        source, mirror = _build(state)
        async with source, mirror:
            return await run_checks([(source, mirror)])

    results = _run(state, "check", run)
    for r in results:
        line = f"{'ok  ' if r.ok else 'FAIL'} {r.name:<10} {r.detail}"
        (out if r.ok else err).print(_redact(line, state), markup=False)
    sys.exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE)


@cli.command("config")
@click.pass_obj
def show_config(state: _State) -> None:
    """Print the effective settings (secrets masked)."""
    data = state.settings.describe()  # masks the token and the MongoDB password
    out.print_json(json.dumps(data, default=str))


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
            source, mirror = _build(state)
            async with source, mirror:
                await source.test_connection()

        _run(state, "connection test", probe)
        out.print("Directus connection OK")
        return
    if list_versions:

        async def listing() -> Any:
            source, mirror = _build(state)
            async with source, mirror:
                return await source.list_versions()

        for info in _run(state, "listing versions", listing):
            out.print(f"v{info.version}: {info.version_name or ''}", markup=False)
        return
    results, activated = _run(
        state,
        "sync",
        lambda: _sync(
            state, [version] if version else None, latest_only=version is None, activate=True
        ),
    )
    sys.exit(_report_sync(state, results, False, activated))


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="storybench-prompts", standalone_mode=True)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
