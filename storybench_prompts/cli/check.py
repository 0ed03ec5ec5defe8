"""``check`` and ``config``: every part of the stack, and the settings in effect."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..content.kinds import EVALUATION_SETS, PROMPT_SETS
from .app import EXIT_FAILURE, EXIT_OK, State, cli, run_command, stack_for


@cli.command()
@click.pass_obj
def check(state: State) -> None:
    """Directus, token, schema, mirror and freshness, for both kinds, and the realtime
    channel: one line per check."""
    from ..ops.checks import check_realtime, run_checks

    async def run() -> Any:
        async with stack_for(state, [PROMPT_SETS, EVALUATION_SETS]) as views:
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
    for r in run_command(state, "check", run):
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
def show_config(state: State) -> None:
    """Print the effective settings (secrets masked)."""
    data = state.settings.describe()  # masks the token and the MongoDB password
    state.data(json.dumps(data, indent=2, default=str))
