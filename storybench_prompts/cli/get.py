"""``get``: what would be served, from the cache, Directus, the mirror or a lockfile."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._exceptions import (
    LockedContentNotFoundError,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from .._redact import redact_uri
from ..content.kinds import KINDS, ContentKind
from .app import (
    EXIT_FAILURE,
    EXIT_NOT_FRESH,
    State,
    cli,
    directus_settings_problem,
    fail,
    mirror_for,
    require_directus,
    source_for,
    usage_error,
)
from .waiting import DirectusWait, TimedSource, with_waiting_notice

if TYPE_CHECKING:
    from ..content.models import VersionedContent
    from ..mirrors.base import PromptMirror

MIN_HASH_PREFIX = 6
_HASH_ARGUMENT = re.compile(r"[0-9a-f]{6,16}")


def _print_readable(state: State, kind: ContentKind[Any], content: VersionedContent) -> None:
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


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _from_directus(content: VersionedContent) -> bool:
    """Directus's answer, or a cache entry still fresh (what ``--strict`` accepts)."""
    p = content.provenance
    if p is None:
        return False
    if p.source == "directus":
        return True
    return p.source == "cache" and not (p.stale or p.hedged or p.origin_error)


def _degraded(state: State, kind: ContentKind[Any], content: VersionedContent) -> str | None:
    """Why this answer is not Directus's own, when Directus failed or was slow."""
    p = content.provenance
    if p is None or not (p.origin_error or p.hedged):
        return None
    copy = "the mirror's copy" if p.source == "mirror" else "a cached copy"
    what = f"{copy} of {kind.noun} v{content.version}, read {_age(p.age)} ago"
    at = f" at {redact_uri(state.settings.directus_url)}" if state.settings.directus_url else ""
    if p.origin_error:
        return f"Directus{at} failed ({p.origin_error}); served {what}"
    return (
        f"Directus{at} did not answer within {state.settings.fallback_after:g} s "
        f"(STORYBENCH_PROMPTS_FALLBACK_AFTER); served {what}"
    )


class _Ambiguous(StorybenchPromptsError):
    pass


async def resolve_hash(mirror: PromptMirror[Any], kind: ContentKind[Any], prefix: str) -> str:
    """The full config_hash a prefix names in the mirror (a unique prefix, as git takes it)."""
    if len(prefix) == 16:
        return prefix
    finder = getattr(mirror, "hashes_with_prefix", None)
    if finder is None:
        raise _Ambiguous(f"the {mirror.name} mirror needs the whole 16-character config_hash")
    found: list[str] = await finder(prefix)
    if not found:
        hint = ""
        for other in KINDS.values():
            sibling = getattr(mirror, "for_kind", None)
            if other.name == kind.name or sibling is None:
                continue
            if await sibling(other).hashes_with_prefix(prefix):
                article = "an" if other.noun[0] in "aeiou" else "a"
                hint = f" (it is the hash of {article} {other.noun}: add --kind {other.name})"
        raise PromptSetNotFoundError(
            f"the {mirror.name} mirror holds no {kind.noun} whose config_hash starts with "
            f"{prefix}{hint}"
        )
    if len(found) > 1:
        listed = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise _Ambiguous(
            f"hash prefix {prefix} is ambiguous: {len(found)} {kind.noun}s match ({listed}); "
            "give more characters"
        )
    return found[0]


@cli.command()
@click.argument("version", required=False)
@click.option(
    "--hash",
    "config_hash",
    default=None,
    help="The config_hash a run recorded (or a unique prefix of at least 6 characters).",
)
@click.option(
    "--lock",
    "lock_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A lockfile: exactly the set it names, by its config_hash.",
)
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
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 4 (printing nothing) unless the answer came from Directus or a fresh cache.",
)
@click.pass_obj
def get(
    state: State,
    version: str | None,
    config_hash: str | None,
    lock_file: Path | None,
    as_json: bool,
    source_name: str,
    kind: str,
    strict: bool,
) -> None:
    """Print a set: VERSION is a number or `latest`; --hash HASH is exactly the content a
    run recorded, even after the version was edited or withdrawn in Directus; --lock FILE the
    set a lockfile names (--kind evaluations: its evaluation set).

    An answer served because Directus failed or was slow says so on stderr; with --strict it
    exits 4 instead.
    """
    given = [g for g in (version, config_hash, lock_file) if g is not None]
    if not given:
        raise click.UsageError(
            "say which set: a VERSION (a number or `latest`), --hash HASH or --lock FILE"
        )
    if len(given) > 1:
        raise click.UsageError("give one of VERSION, --hash HASH and --lock FILE")
    if version is not None and version != "latest" and not version.isdigit():
        raise click.BadParameter(
            f"a version number or `latest`, not {version!r}", param_hint="VERSION"
        )
    if config_hash is not None:
        config_hash = config_hash.strip().lower()
        if not _HASH_ARGUMENT.fullmatch(config_hash):
            raise click.BadParameter(
                "a config_hash is 16 hex characters (0-9, a-f), or a unique prefix of at "
                f"least {MIN_HASH_PREFIX}, as `get latest` prints it; got {given[0]!r}",
                param_hint="--hash",
            )
        if source_name == "directus":
            raise click.UsageError("--hash reads the mirror (Directus keeps no old content)")
    if strict and (config_hash is not None or source_name == "mirror"):
        raise click.UsageError(
            "--strict asks for Directus's answer; --hash and --source mirror read the mirror"
        )
    content_kind = KINDS[kind]
    if lock_file is not None:
        content = _from_lock(state, lock_file, content_kind, source_name)
    elif config_hash is not None:
        content = _by_hash(state, content_kind, config_hash)
    else:
        content = _by_version(state, content_kind, version or "latest", source_name)
    if strict and not _from_directus(content):
        p = content.provenance
        came = f"the {p.source}" if p is not None else "elsewhere"
        why = _degraded(state, content_kind, content)
        state.warn(
            f"error: --strict: {content_kind.noun} v{content.version} came from {came}, not "
            f"from Directus{f' ({why})' if why else ''}"
        )
        sys.exit(EXIT_NOT_FRESH)
    why = _degraded(state, content_kind, content)
    if why:
        state.warn(f"warning: {why}")
    if as_json:
        state.json(content.to_json_dict())
    else:
        _print_readable(state, content_kind, content)


def _by_hash(state: State, kind: ContentKind[Any], prefix: str) -> VersionedContent:
    async def run() -> VersionedContent:
        async with mirror_for(state, kind) as mirror:
            full = await resolve_hash(mirror, kind, prefix)
            served: VersionedContent = await mirror.get_by_hash(full)
            return served

    return _run(state, f"reading {kind.noun} {prefix}", run)


def _by_version(
    state: State, kind: ContentKind[Any], version: str, source_name: str
) -> VersionedContent:
    number = None if version == "latest" else int(version)
    wait = DirectusWait()

    async def run() -> VersionedContent:
        served: VersionedContent
        if source_name == "mirror":
            async with mirror_for(state, kind) as mirror:
                served = await (mirror.latest() if number is None else mirror.get(number))
                return served
        if source_name == "directus":
            async with source_for(state).for_kind(kind) as directus:
                source = TimedSource(directus, wait)
                served = await (source.latest() if number is None else source.get(number))
                return served
        from .._compose import build_stack

        # One lookup: no realtime channel to open (it would only slow the answer down).
        async with build_stack(state.settings.model_copy(update={"realtime": "off"})) as stack:
            repo = stack.repository(kind)
            wait.started()  # the cache answers at once or waits for Directus (or the mirror)
            try:
                served = await (repo.latest() if number is None else repo.get(number))
            finally:
                wait.answered()
        p = served.provenance
        misconfigured = _misconfiguration(p.origin_error if p is not None else None)
        if misconfigured is not None:
            raise misconfigured
        return served

    if source_name != "mirror":
        require_directus(state)
    # Through the cache, the mirror answers after fallback_after when it holds the version:
    # say that Directus is awaited only when it is awaited past that.
    after = 1.0 if source_name == "directus" else state.settings.fallback_after + 1.0
    return _run(
        state,
        f"reading {kind.noun} {version}",
        lambda: with_waiting_notice(state, wait, run, after=after),
    )


def _misconfiguration(origin_error: str | None) -> StorybenchPromptsError | None:
    """The error to exit 2 with when the cache served a copy because of a misconfiguration
    (a misconfiguration is not an outage: no copy hides it)."""
    from .._exceptions import DirectusAuthenticationError

    if origin_error == "DirectusAuthenticationError":
        return DirectusAuthenticationError(
            "Directus rejected the token (HTTP 401); a copy is not served for a misconfiguration"
        )
    return None


def _from_lock(
    state: State, path: Path, kind: ContentKind[Any], source_name: str
) -> VersionedContent:
    """Exactly the set a lockfile names: the mirror's record of its hash, else Directus's
    version when it still holds that hash; never other content."""
    from ..ops.lock import Lock

    try:
        lock = Lock.load(path)
    except StorybenchPromptsError as exc:  # LockFileError names the file and the problem
        fail(state, "reading the lock file", exc)
    locked = lock.set_of(kind)
    if locked is None:
        state.warn(f"error: lock file {path} names no {kind.noun}")
        sys.exit(EXIT_FAILURE)
    wanted = f"{kind.noun} {locked.config_hash} (v{locked.version}, named by {path})"
    wait = DirectusWait()

    async def run() -> VersionedContent:
        missing = "the mirror does not hold it"
        if source_name != "directus":
            async with mirror_for(state, kind) as mirror:
                try:
                    found: VersionedContent = await mirror.get_by_hash(locked.config_hash)
                    if found.version != locked.version:  # as verify and the drop-in judge it
                        raise LockedContentNotFoundError(
                            f"{wanted}: the mirror holds that hash as version {found.version}, "
                            f"not {locked.version}",
                            kind=kind.name,
                            version=locked.version,
                            config_hash=locked.config_hash,
                        )
                    return found
                except PromptSetNotFoundError:
                    pass
                except StorybenchPromptsError as exc:
                    if source_name == "mirror":
                        raise
                    missing = f"the mirror could not be read ({exc})"
        if source_name == "mirror":
            raise PromptSetNotFoundError(f"the mirror holds no {wanted}")
        problem = (
            "STORYBENCH_PROMPTS_OFFLINE is on"
            if state.settings.offline
            else directus_settings_problem(state.settings)
        )
        if problem:
            usage_error(state, f"{wanted}: {missing}, and Directus cannot be asked: {problem}")
        async with source_for(state).for_kind(kind) as directus:
            try:
                current: VersionedContent = await TimedSource(directus, wait).get(locked.version)
            except PromptSetNotFoundError as exc:
                raise PromptSetNotFoundError(
                    f"{missing}, and Directus does not publish v{locked.version} ({exc})"
                ) from exc
        if current.config_hash != locked.config_hash:
            raise PromptSetNotFoundError(
                f"{missing}, and Directus's v{locked.version} now holds other content "
                f"({current.config_hash})"
            )
        return current

    return _run(state, f"reading {wanted}", lambda: with_waiting_notice(state, wait, run))


def _run(state: State, what: str, fn: Any) -> VersionedContent:
    try:
        import anyio

        result: VersionedContent = anyio.run(fn)
        return result
    except _Ambiguous as exc:
        usage_error(state, str(exc))
    except StorybenchPromptsError as exc:
        fail(state, what, exc)
