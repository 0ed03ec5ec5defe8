"""``check`` and ``config``: every part of the stack, and the settings in effect."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from .._defaults import DEFAULT_CHECK_TIMEOUT
from ..content.kinds import EVALUATION_SETS, PROMPT_SETS
from .app import (
    EXIT_FAILURE,
    EXIT_OK,
    Seconds,
    State,
    cli,
    fail,
    require_directus,
    run_command,
    setting_error,
    setting_of,
    stack_for,
)

if TYPE_CHECKING:
    from ..ops.checks import CheckResult


def _status(directus: CheckResult, at: float) -> dict[str, Any]:
    """Directus as this run saw it, in the shape of the cache's ``OriginStatus``."""
    from .._events import OriginState, OriginStatus

    error = directus.error
    status = OriginStatus(
        state=OriginState.VALID if directus.ok else OriginState.INTERRUPTED,
        since=at,
        last_error=None if directus.ok else directus.detail,
        last_error_kind=type(error).__name__ if error is not None else None,
        last_success_at=at + (directus.seconds or 0.0) if directus.ok else None,
        auth_failed=error is not None and setting_of(error) == "DIRECTUS_TOKEN",
    )
    data = asdict(status)
    data["state"] = status.state.value
    return data


def _result_json(r: CheckResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "kind": r.kind,
        "ok": r.ok,
        "detail": r.detail,
        "notes": list(r.notes),
        "seconds": round(r.seconds, 3) if r.seconds is not None else None,
        "error_kind": type(r.error).__name__ if r.error is not None else None,
    }


@cli.command()
@click.option(
    "--timeout",
    "directus_timeout",
    type=Seconds(exclusive=True),
    default=DEFAULT_CHECK_TIMEOUT,
    show_default=True,
    help="Seconds to wait for Directus; a Directus that does not answer by then fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def check(state: State, directus_timeout: float, as_json: bool) -> None:
    """Directus, token, schema, published content, mirror and freshness, for both kinds,
    and the realtime channel: one line per check, all on stdout.

    Every wait for Directus is bounded by --timeout; a Directus that does not answer fails
    with the time waited, and the checks that need it are skipped rather than waited for
    again. Exit 0 when every check passes, 1 when one fails, 2 when a setting is wrong
    (DIRECTUS_URL, DIRECTUS_TOKEN).
    """
    require_directus(state)
    import httpx

    from ..ops.checks import CheckResult, check_realtime, run_checks
    from .counting import CountingTransport

    settings = state.settings.model_copy(
        update={
            "directus_connect_timeout": min(
                state.settings.directus_connect_timeout, directus_timeout
            ),
            "directus_read_timeout": directus_timeout,
            "directus_retry_deadline": directus_timeout,
        }
    )
    counting = CountingTransport(httpx.AsyncHTTPTransport())
    started_at = time.time()
    started = time.monotonic()

    async def run() -> list[CheckResult]:
        async with stack_for(
            State(settings, state.verbose, state.quiet),
            [PROMPT_SETS, EVALUATION_SETS],
            transport=counting,
        ) as views:
            results = await run_checks(
                [(s, m) for _k, s, m in views],
                directus_timeout=directus_timeout,
                concurrency=settings.concurrency,
            )
            if settings.realtime != "off" and settings.directus_token:
                if not results[0].ok:
                    results.append(
                        CheckResult("realtime", False, "skipped: the directus check failed")
                    )
                else:
                    results.append(
                        await check_realtime(
                            views[0][1].url,
                            settings.directus_token,
                            [
                                *PROMPT_SETS.related_collections,
                                *EVALUATION_SETS.related_collections,
                            ],
                            mode=settings.realtime,
                            wait=directus_timeout,
                        )
                    )
            return results

    results = run_command(state, "check", run)
    failed = [r for r in results if not r.ok]
    misconfigured = next(
        (r.error for r in failed if r.error is not None and setting_error(r.error)), None
    )
    if as_json:
        directus = results[0]
        state.json(
            {
                "ok": not failed,
                "timeout": directus_timeout,
                "seconds": round(time.monotonic() - started, 3),
                "directus": {
                    "url": settings.directus_url,
                    "answered": directus.ok,
                    "answer_seconds": (
                        round(directus.seconds, 3) if directus.seconds is not None else None
                    ),
                    "error": None if directus.ok else directus.detail,
                    "setting": setting_of(directus.error) if directus.error else None,
                },
                "status": _status(directus, started_at),
                "counters": counting.as_dict(),
                "checks": [_result_json(r) for r in results],
            }
        )
    else:
        for r in results:
            what = f"{r.name} ({r.kind})" if r.kind else r.name
            line = f"{'ok  ' if r.ok else 'FAIL'} {what:<25} {r.detail}"
            for note in r.notes:
                line += f"\n     note: {note}"
            state.data(line)
        state.say(
            f"{len(results) - len(failed)} ok, {len(failed)} failed "
            f"in {time.monotonic() - started:.1f} s"
        )
    if misconfigured is not None:
        fail(state, "check", misconfigured)  # exit 2, naming the variable
    if failed:
        names = ", ".join(f"{r.name} ({r.kind})" if r.kind else r.name for r in failed[:4])
        more = f" and {len(failed) - 4} more" if len(failed) > 4 else ""
        state.warn(f"error: check: {len(failed)} of {len(results)} checks failed: {names}{more}")
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="The same JSON (the output is JSON).")
@click.pass_obj
def show_config(state: State, as_json: bool) -> None:
    """Print the effective settings as JSON (secrets masked)."""
    state.json(state.settings.describe())  # masks the token and the MongoDB password
