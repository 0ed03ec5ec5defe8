"""Operator tasks built on the repository pieces: comparing Directus with the mirror, and
checking that every part of the stack works, for any content kind. The CLI prints what these
return."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio

from .._exceptions import DirectusForbiddenError, StorybenchPromptsError
from ..content.models import VersionedContent, VersionInfo
from ..mirrors.base import PromptMirror
from ..sources.base import PromptRepository
from ..sources.directus import DirectusSource

__all__ = [
    "CheckResult",
    "VersionComparison",
    "check_schema",
    "compare_versions",
    "run_checks",
]

C = TypeVar("C", bound=VersionedContent)


VersionState = Literal["same", "missing", "differs", "mirror_only", "unknown"]


@dataclass(frozen=True, slots=True)
class VersionComparison:
    version: int
    version_name: str | None
    directus_hash: str | None
    mirror_hash: str | None
    state: VersionState
    error: str | None = None


async def compare_versions(
    source: PromptRepository[C], mirror: PromptMirror[C], *, concurrency: int = 4
) -> list[VersionComparison]:
    """Every published version of the source beside the mirror's copy, plus mirror-only ones.

    Works for any kind: the source and the mirror carry it. Raises when the source cannot
    list its versions; a version that fails to load is ``unknown``.
    """
    published = await source.versions()
    mirrored = {info.version: info for info in await mirror.versions()}
    limiter = anyio.CapacityLimiter(concurrency)
    rows: dict[int, VersionComparison] = {}

    async def compare(info: VersionInfo) -> None:
        mirror_hash = mirrored[info.version].config_hash if info.version in mirrored else None
        try:
            async with limiter:
                directus_hash = (await source.get(info.version)).config_hash
        except StorybenchPromptsError as exc:
            rows[info.version] = VersionComparison(
                info.version,
                info.version_name,
                None,
                mirror_hash,
                "unknown",
                str(exc).splitlines()[0],
            )
            return
        state: VersionState = (
            "missing"
            if mirror_hash is None
            else "same"
            if mirror_hash == directus_hash
            else "differs"
        )
        rows[info.version] = VersionComparison(
            info.version, info.version_name, directus_hash, mirror_hash, state
        )

    async with anyio.create_task_group() as tg:
        for info in published:
            tg.start_soon(compare, info)
    for version, info in mirrored.items():
        if version not in rows:
            rows[version] = VersionComparison(
                version, info.version_name, None, info.config_hash, "mirror_only"
            )
    return [rows[v] for v in sorted(rows)]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of ``check``. ``kind`` names the content kind the check is about (None for
    Directus itself); ``notes`` are remarks that do not fail the check."""

    name: str
    ok: bool
    detail: str
    kind: str | None = None
    notes: tuple[str, ...] = ()


class _CheckFailed(StorybenchPromptsError):
    pass


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


async def _check(
    name: str, probe: Callable[[], Awaitable[str]], kind: str | None = None
) -> CheckResult:
    try:
        return CheckResult(name, True, await probe(), kind)
    except StorybenchPromptsError as exc:
        return CheckResult(name, False, _first_line(exc), kind)


async def _absent_fields(
    source: DirectusSource[Any], collection: str, fields: Sequence[str]
) -> list[str]:
    """The fields (``a|b``: either) that Directus will not return from ``collection``.

    Only read permission is needed: naming a field the schema lacks answers 403, as a missing
    permission does. One query asks for all; only when it is refused is each field asked
    for alone, to name the missing ones.
    """
    if not fields:
        return []

    async def readable(names: Sequence[str]) -> bool:
        try:
            await source.query(
                f"/items/{collection}",
                {"limit": "1", "fields": ",".join(names)},
                f"the schema check of {collection}",
            )
        except DirectusForbiddenError:
            return False
        return True

    if await readable([spec.split("|")[0] for spec in fields]):
        return []
    absent = []
    for spec in fields:
        alternatives = spec.split("|")
        present = False
        for name in alternatives:
            if await readable([name]):
                present = True
                break
        if not present:
            absent.append(" or ".join(alternatives))
    return absent


async def check_schema(source: DirectusSource[Any]) -> tuple[str, list[str]]:
    """Check the source kind's collections: raise when a needed field is absent.

    Returns a summary and one note per collection lacking optional fields.
    """
    expectation = source.kind.schema
    problems: list[str] = []
    unreadable: set[str] = set()
    notes: list[str] = []
    for collection, required in expectation.required.items():
        absent = await _absent_fields(source, collection, required)
        if "id" in absent:
            # Every item has an `id`: the collection is missing, or the token may not read it.
            unreadable.add(collection)
            problems.append(f"{collection}: collection missing or not readable by the token")
        elif absent:
            problems.append(f"{collection} lacks {', '.join(absent)}")
    for collection, optional in expectation.optional.items():
        if collection in unreadable:
            continue
        absent = await _absent_fields(source, collection, optional)
        if absent:
            notes.append(f"{collection} has no optional {', '.join(absent)}")
    if problems:
        raise _CheckFailed(f"{source.kind.noun} schema: {'; '.join(problems)}")
    return f"{len(expectation.required)} collections with the needed fields", notes


async def run_checks(
    sources_and_mirrors: Sequence[tuple[DirectusSource[Any], PromptMirror[Any]]],
    *,
    max_mirror_age: float = 7 * 24 * 3600.0,
) -> list[CheckResult]:
    """Directus reachable with a valid token; then, for each kind, its schema, its mirror
    reachable and writable, and the mirror fresh.

    One ``(source, mirror)`` pair per content kind, e.g. ``[(prompts, prompt_mirror),
    (prompts.for_kind(EVALUATION_SETS), evaluation_mirror)]``. The ``directus`` result comes
    first (``kind`` None); every other result names its kind. Optional fields the schema lacks
    are notes on the ``schema`` result, not failures.
    """
    if not sources_and_mirrors:
        raise ValueError("run_checks needs at least one (source, mirror) pair")
    results: list[CheckResult] = []
    first = sources_and_mirrors[0][0]

    async def reachable() -> str:
        await first.test_connection()
        return f"{first.url} answers and the token may read {first.kind.collection}"

    results.append(await _check("directus", reachable))
    directus_ok = results[-1].ok
    for source, mirror in sources_and_mirrors:
        results.extend(await _kind_checks(source, mirror, directus_ok, max_mirror_age))
    return results


async def _kind_checks(
    source: DirectusSource[Any],
    mirror: PromptMirror[Any],
    directus_ok: bool,
    max_mirror_age: float,
) -> list[CheckResult]:
    kind = source.kind
    results: list[CheckResult] = []

    if not directus_ok:
        results.append(CheckResult("schema", False, "skipped: Directus unreachable", kind.name))
    else:
        try:
            summary, notes = await check_schema(source)
        except StorybenchPromptsError as exc:
            results.append(CheckResult("schema", False, _first_line(exc), kind.name))
        else:
            results.append(CheckResult("schema", True, summary, kind.name, tuple(notes)))

    async def writable() -> str:
        await mirror.check_writable()
        return f"{mirror!r} is reachable and writable"

    results.append(await _check("mirror", writable, kind.name))

    async def freshness() -> str:
        stored = await mirror.versions()
        if not stored:
            raise _CheckFailed(
                f"the mirror holds no {kind.noun}: run `storybench-prompts sync --all`"
            )
        newest = await mirror.get(stored[-1].version)
        fetched = newest.provenance.fetched_at_epoch if newest.provenance else 0.0
        age = time.time() - fetched
        if directus_ok:
            latest = await source.latest()
            if latest.version not in {info.version for info in stored}:
                raise _CheckFailed(
                    f"Directus publishes {kind.noun} version {latest.version}, the mirror "
                    "lacks it: run sync"
                )
        if age > max_mirror_age:
            raise _CheckFailed(f"newest mirror copy is {age / 3600:.0f} h old: run sync")
        return f"{len(stored)} version(s), newest v{newest.version} read {age:.0f} s ago"

    results.append(await _check("freshness", freshness, kind.name))
    return results


async def check_realtime(
    url: str,
    token: Any,
    collections: Sequence[str],
    *,
    mode: Literal["auto", "on"] = "auto",
    wait: float = 10.0,
) -> CheckResult:
    """Connect Directus's realtime channel once and say what a repository would get from it.

    ``auto``: a server without realtime is fine (TTLs rule) and says so; ``on``: it fails.
    """
    from ..sources.realtime import RealtimeChannel, RealtimeTiming

    channel = RealtimeChannel(
        url,
        token,
        collections,
        on_change=lambda *_: None,
        mode=mode,
        timing=RealtimeTiming(handshake_timeout=wait),
    )
    status = channel.status
    with anyio.move_on_after(wait + 1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(channel.run)
            # Polled: the channel has no callback for every state it can settle in.
            while (status := channel.status).state in ("off", "connecting"):  # noqa: ASYNC110
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()  # the channel reports "off" once stopped: keep what it said
    state = str(status.state)
    if state == "open":
        watched = len(collections) - len(status.unsubscribed)
        detail = f"open: changes in {watched} collection(s) arrive as they happen"
        notes = tuple(
            f"not subscribed to {c} (missing, or not readable by the token): TTLs rule there"
            for c in status.unsubscribed
        )
        return CheckResult("realtime", True, detail, notes=notes)
    reason = f" ({status.last_error})" if status.last_error else ""
    if state == "unavailable" and mode == "auto":
        return CheckResult(
            "realtime",
            True,
            "not offered by this Directus (WEBSOCKETS_ENABLED=true turns it on); TTLs rule",
        )
    return CheckResult("realtime", False, f"{state}{reason}")
