"""Checking that every part of the stack works, for any content kind: Directus, its schema,
the content, the mirror and realtime (``storybench-prompts check`` prints what these return).
Comparing Directus's versions with the mirror's copies is ``compare``."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import anyio

from .._defaults import DEFAULT_SYNC_CONCURRENCY
from .._exceptions import (
    DirectusForbiddenError,
    DirectusTimeoutError,
    InvalidPromptSetError,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from ..content.models import VersionedContent
from ..mirrors.base import PromptMirror
from ..sources.base import PromptRepository
from ..sources.directus import DirectusSource
from .compare import answered_within, first_line, refusal

__all__ = [
    "CheckResult",
    "check_content",
    "check_schema",
    "describe_mirror",
    "run_checks",
]

C = TypeVar("C", bound=VersionedContent)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of ``check``. ``kind`` names the content kind the check is about (None for
    Directus itself); ``notes`` are remarks that do not fail the check; ``seconds`` how long
    it took; ``error`` the failure, when one was raised."""

    name: str
    ok: bool
    detail: str
    kind: str | None = None
    notes: tuple[str, ...] = ()
    seconds: float | None = None
    error: StorybenchPromptsError | None = field(default=None, compare=False, repr=False)


class _CheckFailed(StorybenchPromptsError):
    pass


async def _check(
    name: str, probe: Callable[[], Awaitable[str]], kind: str | None = None
) -> CheckResult:
    started = time.monotonic()
    try:
        detail = await probe()
    except StorybenchPromptsError as exc:
        seconds = time.monotonic() - started
        error = None if isinstance(exc, _CheckFailed) else exc
        return CheckResult(name, False, first_line(exc), kind, seconds=seconds, error=error)
    return CheckResult(name, True, detail, kind, seconds=time.monotonic() - started)


class _Directus:
    """What the checks know of Directus: every check that needs it shares one answer, and
    once it has failed or stalled the others are skipped rather than waited for again."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.failure: str | None = None

    async def step(
        self,
        name: str,
        probe: Callable[[], Awaitable[str]],
        kind: str | None = None,
    ) -> CheckResult:
        if self.failure is not None:
            return CheckResult(name, False, f"skipped: {self.failure}", kind)
        started = time.monotonic()
        result: CheckResult | None = None
        with anyio.move_on_after(self.timeout if self.timeout is not None else math.inf):
            result = await _check(name, probe, kind)
        if result is None:
            waited = time.monotonic() - started
            self.failure = f"Directus did not answer within {self.timeout:g} s"
            error = DirectusTimeoutError(f"{self.failure} (waited {waited:.1f} s)")
            return CheckResult(name, False, str(error), kind, seconds=waited, error=error)
        return result


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
    directus_timeout: float | None = None,
    concurrency: int = DEFAULT_SYNC_CONCURRENCY,
) -> list[CheckResult]:
    """Directus reachable with a valid token; then, for each kind, its schema, its published
    content (every version passes the rules), its mirror reachable and writable, and the
    mirror fresh.

    One ``(source, mirror)`` pair per content kind, e.g. ``[(prompts, prompt_mirror),
    (prompts.for_kind(EVALUATION_SETS), evaluation_mirror)]``. The ``directus`` result comes
    first (``kind`` None); every other result names its kind. Optional fields the schema lacks
    are notes on the ``schema`` result, not failures.

    ``directus_timeout`` bounds each wait for Directus. The checks that need Directus share
    its answer: once it has failed or not answered in time, they are reported skipped instead
    of waiting again, so a stalled Directus costs about ``directus_timeout`` in all. The
    mirrors are checked meanwhile.
    """
    if not sources_and_mirrors:
        raise ValueError("run_checks needs at least one (source, mirror) pair")
    first = sources_and_mirrors[0][0]
    directus = _Directus(directus_timeout)
    mirror_results: dict[int, CheckResult] = {}
    directus_result: list[CheckResult] = []

    async def reachable() -> str:
        started = time.monotonic()
        await first.test_connection()
        return (
            f"{first.url} answered in {time.monotonic() - started:.2f} s and the token may "
            f"read {first.kind.collection}"
        )

    async def check_directus() -> None:
        result = await directus.step("directus", reachable)
        if not result.ok and directus.failure is None:
            directus.failure = "the directus check failed"
        directus_result.append(result)

    async def check_mirror(index: int, mirror: PromptMirror[Any], kind: str) -> None:
        async def writable() -> str:
            await mirror.check_writable()
            return f"{describe_mirror(mirror)} is reachable and writable"

        mirror_results[index] = await _check("mirror", writable, kind)

    async with anyio.create_task_group() as tg:
        tg.start_soon(check_directus)
        for index, (source, mirror) in enumerate(sources_and_mirrors):
            tg.start_soon(check_mirror, index, mirror, source.kind.name)
    results = directus_result[:]
    for index, (source, mirror) in enumerate(sources_and_mirrors):
        results.extend(
            await _kind_checks(
                source, mirror, mirror_results[index], directus, max_mirror_age, concurrency
            )
        )
    return results


def describe_mirror(mirror: PromptMirror[Any]) -> str:
    """The mirror for a person: where it keeps its copies (never a repr)."""
    location = getattr(mirror, "location", None)
    return location if isinstance(location, str) and location else f"the {mirror.name} mirror"


async def _kind_checks(
    source: DirectusSource[Any],
    mirror: PromptMirror[Any],
    mirror_result: CheckResult,
    directus: _Directus,
    max_mirror_age: float,
    concurrency: int,
) -> list[CheckResult]:
    kind = source.kind
    results: list[CheckResult] = []

    async def schema() -> str:
        summary, notes = await check_schema(source)
        schema_notes.extend(notes)
        return summary

    schema_notes: list[str] = []
    checked = await directus.step("schema", schema, kind.name)
    results.append(replace(checked, notes=tuple(schema_notes)) if checked.ok else checked)

    async def content() -> str:
        return await check_content(source, concurrency=concurrency)

    results.append(await directus.step("content", content, kind.name))
    results.append(mirror_result)

    async def freshness() -> str:
        stored = await mirror.versions()
        if not stored:
            raise _CheckFailed(
                f"the mirror holds no {kind.noun}: run `storybench-prompts sync --all`"
            )
        newest = await mirror.get(stored[-1].version)
        fetched = newest.provenance.fetched_at_epoch if newest.provenance else 0.0
        age = time.time() - fetched
        compared = ""
        if directus.failure is None:
            try:
                latest = await answered_within(
                    source.latest(), directus.timeout, f"the latest {kind.noun}"
                )
            except DirectusTimeoutError as exc:
                directus.failure = f"Directus did not answer within {directus.timeout:g} s"
                compared = f" (not compared with Directus: {first_line(exc)})"
            else:
                if latest.version not in {info.version for info in stored}:
                    raise _CheckFailed(
                        f"Directus publishes {kind.noun} version {latest.version}, the mirror "
                        "lacks it: run sync"
                    )
        else:
            compared = f" (not compared with Directus: {directus.failure})"
        if age > max_mirror_age:
            raise _CheckFailed(f"newest mirror copy is {age / 3600:.0f} h old: run sync")
        return f"{len(stored)} version(s), newest v{newest.version} read {age:.0f} s ago{compared}"

    results.append(await _check("freshness", freshness, kind.name))
    return results


async def check_content(
    source: PromptRepository[Any], *, concurrency: int = DEFAULT_SYNC_CONCURRENCY
) -> str:
    """Every published version of the source passes the content rules; raise naming each
    refused version and its first problem otherwise."""
    published = await source.versions()
    noun = getattr(getattr(source, "kind", None), "noun", "set")
    refused: dict[int, InvalidPromptSetError] = {}
    failed: list[StorybenchPromptsError] = []
    limiter = anyio.CapacityLimiter(max(1, concurrency))

    async def load(version: int) -> None:
        try:
            async with limiter:
                await source.get(version)
        except InvalidPromptSetError as exc:
            refused[version] = exc
        except PromptSetNotFoundError:
            return  # unpublished since the listing
        except StorybenchPromptsError as exc:
            failed.append(exc)

    async with anyio.create_task_group() as tg:
        for info in published:
            tg.start_soon(load, info.version)
    if failed:
        raise failed[0]
    if refused:
        versions = sorted(refused)
        first = versions[0]
        others = (
            f"; also refused: {', '.join(f'v{v}' for v in versions[1:])}" if versions[1:] else ""
        )
        raise _CheckFailed(
            f"published {noun} v{first} is refused: {refusal(refused[first])}{others}"
        )
    return f"{len(published)} published version(s) pass the content rules"


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
