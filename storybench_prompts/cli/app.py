"""The ``storybench-prompts`` group: settings, logging, errors and exit codes every command
shares, and the helpers that build what a command needs (a source, a mirror, both per kind).

A thin shell over the library. Exit codes: 0 success, 1 failure, 2 usage error,
3 partial sync (some versions refused or failed, the others synced).

Start-up matters here (a lookup should feel instant): the library's modules are imported
inside the commands that use them, JSON and plain lines are printed with ``click.echo``, and
``rich`` is loaded only for what a person reads on a terminal (tables, the progress bar).
"""

from __future__ import annotations

import logging
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
    from ..mirrors.base import PromptMirror
    from ..sources.directus import DirectusSource

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "KIND_CHOICES",
    "State",
    "cli",
    "fail",
    "kinds_for",
    "main",
    "mirror_for",
    "run_command",
    "source_for",
    "stack_for",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

T = TypeVar("T")

KIND_CHOICES = ["prompts", "evaluations", "all"]


class State:
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


class RedactSecrets(logging.Filter):
    """Masks every configured secret in log records, whatever logged them."""

    def __init__(self, state: State) -> None:
        super().__init__()
        self._state = state

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._state.redact(record.getMessage()), None
        return True


def hint_for(exc: BaseException) -> str:
    if isinstance(exc, DirectusAuthenticationError):
        return "check DIRECTUS_TOKEN"
    if isinstance(exc, DirectusConnectionError | DirectusTimeoutError):
        return "check DIRECTUS_URL and that Directus is running"
    if isinstance(exc, MirrorUnavailableError):
        return "check MONGODB_URI or STORYBENCH_PROMPTS_MIRROR_DIR"
    if isinstance(exc, ConfigurationError):
        return "see `storybench-prompts --help` and docs/configuration.md"
    return ""


def fail(state: State, what: str, exc: BaseException, code: int = EXIT_FAILURE) -> NoReturn:
    if state.verbose:
        state.warn("".join(traceback.format_exception(exc)))
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = hint_for(exc)
    state.warn(f"error: {what}: {first}" + (f" ({hint})" if hint and hint not in first else ""))
    sys.exit(code)


def run_command(state: State, what: str, fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except StorybenchPromptsError as exc:
        fail(state, what, exc)


@contextmanager
def settings_errors() -> Iterator[None]:
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        click.echo(f"error: invalid settings: {problems}", err=True)
        sys.exit(EXIT_USAGE)


def kinds_for(choice: str) -> list[ContentKind[Any]]:
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
    with settings_errors():
        settings = Settings(_env_file=env_file or ".env", **overrides)
    state = State(settings, verbose, quiet)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets(state))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    for noisy in ("pymongo", "httpcore", "httpx", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = state


def source_for(state: State) -> DirectusSource[Any]:
    from .._compose import build_source

    try:
        return build_source(state.settings)
    except ConfigurationError as exc:
        fail(state, "configuration", exc)


def mirror_for(state: State, kind: ContentKind[Any] = PROMPT_SETS) -> PromptMirror[Any]:
    from .._compose import build_mirror

    try:
        return build_mirror(state.settings, kind)
    except ConfigurationError as exc:
        fail(state, "configuration", exc)


@asynccontextmanager
async def stack_for(
    state: State, kinds: list[ContentKind[Any]]
) -> AsyncIterator[list[tuple[ContentKind[Any], DirectusSource[Any], PromptMirror[Any]]]]:
    """One Directus client and one mirror connection, viewed per kind."""
    mirror = mirror_for(state)
    source = source_for(state)
    try:
        yield [(k, source.for_kind(k), mirror.for_kind(k)) for k in kinds]  # type: ignore[attr-defined]
    finally:
        with anyio.CancelScope(shield=True):
            await source.aclose()
            await mirror.aclose()


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="storybench-prompts", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
