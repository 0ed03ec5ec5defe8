"""``lock``, ``verify`` and ``export``: what a run used, whether it can still be had, and a
snapshot to serve it with no Directus.

A lockfile that cannot be read or is not a valid lockfile is a usage error (exit 2) naming the
file and what is wrong; ``verify`` exits 1 naming each locked hash that cannot be retrieved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .._exceptions import (
    LockedContentNotFoundError,
    MirrorCorruptError,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from .app import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, State, cli, fail, run_command

if TYPE_CHECKING:
    from ..content.models import VersionedContent
    from ..ops.lock import Lock


class LockedLatestUnknownError(StorybenchPromptsError):
    """Directus could not say which set is the latest, so no lock names one."""


def _usage(state: State, exc: BaseException) -> NoReturn:
    """A lockfile problem: the message names the file and what is wrong; exit 2."""
    fail(state, "lock file", exc, code=EXIT_USAGE)


def _load(state: State, path: Path) -> Lock:
    from ..ops.lock import Lock, LockFileError

    try:
        return Lock.load(path)
    except LockFileError as exc:
        _usage(state, exc)


def _refuse_misconfigured(stack: Any) -> None:
    """A rejected token or a wrong URL met on the way is an error (exit 2 naming the setting),
    whatever the mirror held: a misconfiguration is not an outage."""
    status = stack.status()
    if status.auth_failed or status.misconfigured:
        error = stack.stack.gate.last_exception
        if isinstance(error, StorybenchPromptsError):
            raise error


def _stale(content: VersionedContent) -> str | None:
    """Why ``content`` may not be Directus's latest (served from a copy), or None."""
    p = content.provenance
    if p is None or not (p.stale or p.hedged or p.origin_error):
        return None
    reason = f"Directus failed ({p.origin_error})" if p.origin_error else "Directus was slow"
    return f"{reason}; the {p.source}'s copy of v{content.version} was served"


def _directus_url(state: State) -> str | None:
    settings = state.settings
    return None if settings.offline else settings.directus_url


@cli.command("lock")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The lockfile to write (replaced atomically).",
)
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    default=None,
    help="Prompt set version (default: the latest published).",
)
@click.option(
    "--evaluation-version",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluation set version (default: the latest published).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def lock_command(
    state: State,
    output: Path,
    version: int | None,
    evaluation_version: int | None,
    as_json: bool,
) -> None:
    """Lock the latest published prompt set and evaluation set (or the versions given) into
    a lockfile, and make sure the mirror holds exactly that content."""
    from .._compose import build_stack
    from ..ops.lock import Lock, LockedSet, LockFileError
    from ..ops.locked import keep_in_mirror

    async def run() -> tuple[Lock, list[tuple[str, VersionedContent, str]]]:
        async with build_stack(state.settings) as stack:
            prompts, evaluations = stack.prompts, stack.evaluations
            prompt_set = await (prompts.latest() if version is None else prompts.get(version))
            if version is None and not state.settings.offline and _stale(prompt_set):
                raise LockedLatestUnknownError(
                    f"cannot lock the latest prompt set: {_stale(prompt_set)}, which may not be "
                    f"the latest; lock it by number with --version {prompt_set.version}"
                )
            evaluation_set = None
            try:
                evaluation_set = await (
                    evaluations.latest()
                    if evaluation_version is None
                    else evaluations.get(evaluation_version)
                )
            except PromptSetNotFoundError:
                if evaluation_version is not None:
                    raise
                state.warn("warning: no evaluation set is published; the lock names none")
            if (
                evaluation_set is not None
                and evaluation_version is None
                and not state.settings.offline
                and _stale(evaluation_set)
            ):
                raise LockedLatestUnknownError(
                    f"cannot lock the latest evaluation set: {_stale(evaluation_set)}, which "
                    "may not be the latest; lock it by number with --evaluation-version "
                    f"{evaluation_set.version}"
                )
            kept: list[tuple[str, VersionedContent, str]] = []
            pairs: list[tuple[Any, VersionedContent | None]] = [
                (prompts, prompt_set),
                (evaluations, evaluation_set),
            ]
            for repository, content in pairs:
                mirror: Any = repository.mirror
                if content is None or mirror is None:
                    continue
                await keep_in_mirror(mirror, content)
                kept.append((repository.kind.name, content, mirror.name))
            _refuse_misconfigured(stack)
            made = Lock.from_sets(prompt_set, evaluation_set, directus_url=_directus_url(state))
            return made, kept

    made, kept = run_command(state, "locking", run)
    try:
        made.dump(output)
    except LockFileError as exc:
        _usage(state, exc)
    if as_json:
        state.json(
            {
                "lockfile": str(output),
                "locked": [
                    {"kind": name, **LockedSet.of(content).as_json(), "mirror": mirror}
                    for name, content, mirror in kept
                ],
            }
        )
        return
    for name, content, mirror in kept:
        state.say(
            f"locked {name} v{content.version} {content.config_hash} (in the {mirror} mirror)"
        )
    state.say(f"wrote {output}")


@cli.command()
@click.argument("lockfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def verify(state: State, lockfile: Path, as_json: bool) -> None:
    """Check that every hash LOCKFILE names can be retrieved (Directus's current content or a
    mirror) and re-hashes to it. Exit 0 if so, 1 naming each missing or mismatched hash."""
    from .._compose import build_stack
    from ..ops.locked import resolve_locked

    lock = _load(state, lockfile)

    async def run() -> list[tuple[str, int, str, str | None, BaseException | None]]:
        rows: list[tuple[str, int, str, str | None, BaseException | None]] = []
        async with build_stack(state.settings) as stack:
            for kind, locked in lock.sets():
                try:
                    found = await resolve_locked(stack.repository(kind), locked, kind=kind)
                except LockedContentNotFoundError as exc:
                    rows.append((kind.name, locked.version, locked.config_hash, None, exc))
                else:
                    rows.append(
                        (kind.name, locked.version, locked.config_hash, found.found_in, None)
                    )
            _refuse_misconfigured(stack)
        return rows

    rows = run_command(state, f"verifying {lockfile}", run)
    bad: list[str] = []
    report: list[dict[str, Any]] = []
    for name, number, config_hash, found_in, error in rows:
        row = {"kind": name, "version": number, "config_hash": config_hash}
        if error is None:
            report.append({**row, "state": "ok", "found_in": found_in})
            if not as_json:
                state.say(f"ok        {name} v{number} {config_hash} ({found_in})")
            continue
        causes = getattr(error, "causes", ())
        mark = "MISMATCH" if any(isinstance(c, MirrorCorruptError) for c in causes) else "MISSING"
        bad.append(config_hash)
        reasons = "; ".join(_first_line(c) for c in causes) or _first_line(error)
        report.append({**row, "state": mark.lower(), "problem": reasons})
        if not as_json:
            state.warn(f"{mark:<9} {name} v{number} {config_hash}: {reasons}")
    if as_json:
        state.json({"lockfile": str(lockfile), "ok": not bad, "sets": report})
        sys.exit(EXIT_FAILURE if bad else EXIT_OK)
    if bad:
        state.warn(
            f"error: {len(bad)} locked hash{'es' if len(bad) > 1 else ''} cannot be "
            f"retrieved: {', '.join(bad)}"
        )
        sys.exit(EXIT_FAILURE)
    state.say(f"verified {lockfile}: every locked hash can be retrieved")
    sys.exit(EXIT_OK)


@cli.command()
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty directory for the snapshot.",
)
@click.option(
    "--lock",
    "lockfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Export just what this lockfile names.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def export(state: State, output: Path, lockfile: Path | None, as_json: bool) -> None:
    """Write a self-contained snapshot (the file mirror's format, with manifest.json) of every
    published version of both kinds, or of what --lock names. Serve it with
    STORYBENCH_PROMPTS_OFFLINE=true STORYBENCH_PROMPTS_MIRROR_DIR=DIR."""
    from .._compose import build_stack
    from ..ops.export import MANIFEST, Manifest, export_snapshot

    lock = _load(state, lockfile) if lockfile is not None else None

    async def run() -> Manifest:
        async with build_stack(state.settings) as stack:
            return await export_snapshot(
                stack,
                output,
                lock=lock,
                directus_url=_directus_url(state),
                offline=state.settings.offline,
            )

    manifest = run_command(state, f"exporting to {output}", run)
    if as_json:
        state.json({"output": str(output), "manifest": manifest.as_json()})
        return
    for name, sets in manifest.kinds.items():
        listed = ", ".join(f"v{s.version} {s.config_hash}" for s in sets) or "none"
        state.say(f"{name}: {listed}")
    state.say(f"wrote {output} ({MANIFEST})")


def _first_line(exc: Any) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
