"""The ``storybench-prompts`` group: settings, logging, errors and exit codes every command
shares, and the helpers that build what a command needs (a source, a mirror, both per kind).

A thin shell over the library. Exit codes: 0 success, 1 failure, 2 usage or setting error
(a wrong DIRECTUS_URL or DIRECTUS_TOKEN included: a misconfiguration is not an outage),
3 partial sync (some versions refused or failed, the others synced), 4 ``get --strict`` served
something other than Directus's answer, 130 interrupted (Ctrl-C).

Report lines go to stdout; stderr carries only the command's own errors and warnings.

Start-up matters here (a lookup should feel instant): the library's modules are imported
inside the commands that use them, JSON and plain lines are printed with ``click.echo``, and
``rich`` is loaded only for what a person reads on a terminal (tables, the progress bar).
"""

from __future__ import annotations

import logging
import math
import os
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
    PromptSetUnavailableError,
    StorybenchPromptsError,
)
from ..content.kinds import EVALUATION_SETS, KINDS, PROMPT_SETS, ContentKind
from .directus_settings import directus_settings_problem

if TYPE_CHECKING:
    from .._settings import Settings
    from ..mirrors.base import PromptMirror
    from ..sources.directus import DirectusSource

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FRESH",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "KIND_CHOICES",
    "Seconds",
    "State",
    "cli",
    "directus_settings_problem",
    "fail",
    "first_line",
    "hint_for",
    "kinds_for",
    "main",
    "mirror_for",
    "require_directus",
    "run_command",
    "setting_error",
    "setting_of",
    "source_for",
    "stack_for",
    "usage_error",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NOT_FRESH = 4
EXIT_INTERRUPTED = 130

T = TypeVar("T")

KIND_CHOICES = ["prompts", "evaluations", "all"]


class State:
    def __init__(self, settings: Settings, verbose: bool, quiet: bool) -> None:
        self.settings = settings
        self.verbose = verbose
        self.quiet = quiet

    def secrets(self) -> list[str]:
        from .._redact import uri_secrets

        found = []
        if self.settings.directus_token is not None:
            found.append(self.settings.directus_token.get_secret_value())
        if self.settings.mongodb_uri is not None:
            uri = self.settings.mongodb_uri.get_secret_value()
            found.append(uri)
            found.extend(uri_secrets(uri))
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
        _echo(self.redact(line))

    def warn(self, line: str) -> None:
        """The command's own warnings and errors: stderr."""
        click.echo(self.redact(line), err=True)

    def json(self, data: Any, *, lines: bool = False) -> None:
        """Requested output as JSON: indented, or one object per line (``lines``)."""
        import json

        if lines:
            text = json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))
        else:
            text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        _echo(self.redact(text))


def _echo(text: str) -> None:
    """Print requested output; a reader that stopped reading (``| head``) ends the command
    quietly with exit 0: it has what it asked for."""
    try:
        click.echo(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe
        raise SystemExit(EXIT_OK) from None


class RedactSecrets(logging.Filter):
    """Masks every configured secret in log records, whatever logged them."""

    def __init__(self, state: State) -> None:
        super().__init__()
        self._state = state

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._state.redact(record.getMessage()), None
        record.public_name = public_logger_name(record.name)
        return True


def public_logger_name(name: str) -> str:
    """A logger's name without its private modules: ``storybench_prompts._blocking`` is
    logged as ``storybench_prompts``."""
    kept: list[str] = []
    for part in name.split("."):
        if part.startswith("_"):
            break
        kept.append(part)
    return ".".join(kept) or name


def setting_error(exc: BaseException) -> StorybenchPromptsError | None:
    """The misconfiguration behind ``exc``, if any: a wrong setting, a rejected token (401) or
    an answer that is not Directus's. Such an error will not fix itself by retrying; it
    exits 2. Looked for in ``exc`` and, for "nothing could serve", in each of its causes."""
    if isinstance(exc, ConfigurationError | DirectusAuthenticationError):
        return exc
    if isinstance(exc, PromptSetUnavailableError):
        for cause in exc.causes:
            found = setting_error(cause)
            if found is not None:
                return found
    return None


def setting_of(exc: BaseException) -> str | None:
    """The variable to check for a misconfiguration: the error's ``setting`` if it names
    one, DIRECTUS_TOKEN for a rejected token."""
    named = getattr(exc, "setting", None)
    if isinstance(named, str) and named:
        return named
    if isinstance(exc, DirectusAuthenticationError):
        return "DIRECTUS_TOKEN"
    return None


def hint_for(exc: BaseException) -> str:
    setting = setting_of(exc)
    if setting:
        return f"check {setting}"
    if isinstance(exc, DirectusConnectionError | DirectusTimeoutError):
        return "check DIRECTUS_URL and that Directus is running"
    if isinstance(exc, MirrorUnavailableError):
        return "check MONGODB_URI or STORYBENCH_PROMPTS_MIRROR_DIR"
    if isinstance(exc, ConfigurationError):
        return "see `storybench-prompts --help` and docs/configuration.md"
    return ""


def first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def fail(state: State, what: str, exc: BaseException, code: int | None = None) -> NoReturn:
    """One line on stderr naming what failed and what to check, then exit: 2 for a
    misconfiguration (naming the variable), else ``code`` (default 1)."""
    if state.verbose:
        state.warn("".join(traceback.format_exception(exc)))
    misconfigured = setting_error(exc)
    shown = misconfigured if misconfigured is not None else exc  # the cause that matters
    first = first_line(shown)
    hint = hint_for(shown)
    state.warn(f"error: {what}: {first}" + (f" ({hint})" if hint and hint not in first else ""))
    if misconfigured is not None:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAILURE if code is None else code)


def usage_error(state: State, message: str) -> NoReturn:
    """A usage or setting error found before any request: one line, exit 2."""
    state.warn(f"error: {message}")
    sys.exit(EXIT_USAGE)


def run_command(state: State, what: str, fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except StorybenchPromptsError as exc:
        fail(state, what, exc)


def require_directus(state: State) -> None:
    """Exit 2 now, before any request, if the Directus settings cannot work."""
    if state.settings.offline:
        return  # offline, Directus is never asked: its settings do not matter
    problem = directus_settings_problem(state.settings)
    if problem:
        usage_error(state, problem)


if TYPE_CHECKING:
    _FloatParam = click.ParamType[float, Any]
else:  # click before 8.2 has no type parameters
    _FloatParam = click.ParamType


class Seconds(_FloatParam):
    """A finite number of seconds, at least ``minimum`` (above it, with ``exclusive``):
    nan, inf and negatives are usage errors."""

    name = "seconds"

    def __init__(self, minimum: float = 0.0, *, exclusive: bool = False) -> None:
        self.minimum = minimum
        self.exclusive = exclusive

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        if number < self.minimum or (self.exclusive and number == self.minimum):
            relation = "more than" if self.exclusive else "at least"
            self.fail(f"must be {relation} {self.minimum:g} s, got {value}", param, ctx)
        return number


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
    except ConfigurationError as exc:
        click.echo(f"error: {exc}", err=True)
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
    type=Seconds(),
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
    STORYBENCH_PROMPTS_*) and a .env file. Exit codes: 0 ok, 1 failure, 2 usage or setting
    error, 3 partial sync, 4 not Directus's answer (get --strict), 130 interrupted.
    """
    from .._settings import Settings

    try:
        missing = env_file is not None and not env_file.is_file()
    except OSError as exc:  # a name too long, say
        raise click.BadParameter(f"{exc.strerror or exc}", param_hint="--env-file") from None
    if missing:
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
    handler.setFormatter(logging.Formatter("%(levelname)s %(public_name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    for noisy in ("pymongo", "httpcore", "httpx", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The outage log is for long-running processes; a command reports the outage itself (a
    # warning on a served copy, an error when nothing could serve), once.
    logging.getLogger("storybench_prompts.outage").setLevel(
        logging.DEBUG if verbose else logging.CRITICAL
    )
    ctx.obj = state


def source_for(state: State, **kwargs: Any) -> DirectusSource[Any]:
    from .._compose import build_source

    require_directus(state)
    try:
        return build_source(state.settings, **kwargs)
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
    state: State, kinds: list[ContentKind[Any]], **source_options: Any
) -> AsyncIterator[list[tuple[ContentKind[Any], DirectusSource[Any], PromptMirror[Any]]]]:
    """One Directus client and one mirror connection, viewed per kind."""
    require_directus(state)
    mirror = mirror_for(state)
    source = source_for(state, **source_options)
    try:
        yield [(k, source.for_kind(k), mirror.for_kind(k)) for k in kinds]  # type: ignore[attr-defined]
    finally:
        with anyio.CancelScope(shield=True):
            await source.aclose()
            await mirror.aclose()


def main(argv: list[str] | None = None) -> NoReturn:
    """The entry point: click's errors exit 2 (usage), Ctrl-C exits 130 with one line and no
    traceback (not click's "Aborted!" and 1)."""
    try:
        code = cli.main(args=argv, prog_name="storybench-prompts", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
