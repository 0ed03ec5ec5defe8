"""``versions``: Directus's published versions beside the mirror's copies."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ..content.kinds import ContentKind
from .app import (
    EXIT_FAILURE,
    EXIT_OK,
    KIND_CHOICES,
    State,
    cli,
    kinds_for,
    require_directus,
    run_command,
    stack_for,
)

if TYPE_CHECKING:
    from ..ops.compare import VersionComparison

MARKS = {
    "same": "in mirror",
    "missing": "MISSING from mirror",
    "differs": "DIFFERS",
    "mirror_only": "mirror only (not published)",
    "withdrawn": "withdrawn (kept as a record)",
    "refused": "REFUSED",
    "unknown": "directus error",
    "unverified": "not compared",
}


def _row_json(kind: ContentKind[Any], r: VersionComparison) -> dict[str, Any]:
    return {
        "kind": kind.name,
        "version": r.version,
        "version_name": r.version_name,
        "directus_hash": r.directus_hash,
        "mirror_hash": r.mirror_hash,
        "state": r.state,
        "error": r.error,
    }


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="prompts", show_default=True)
@click.pass_obj
def versions(state: State, as_json: bool, kind: str) -> None:
    """Published versions in Directus beside what the mirror holds, withdrawn ones included.

    Directus has STORYBENCH_PROMPTS_FALLBACK_AFTER seconds (--fallback-after) to answer;
    after that, or when it is down, the mirror's side is shown, each row marked not
    compared. Exit 1 when a version is MISSING, DIFFERS, REFUSED, in error or not compared;
    2 for a wrong DIRECTUS_URL or DIRECTUS_TOKEN.
    """
    require_directus(state)
    from ..ops.compare import NEEDS_ATTENTION, compare_versions

    kinds = kinds_for(kind)
    within = max(state.settings.fallback_after, 0.5)

    async def run() -> Any:
        async with stack_for(state, kinds) as views:
            return [
                (
                    k,
                    await compare_versions(
                        s,
                        m,
                        concurrency=state.settings.concurrency,
                        answer_within=within,
                        fall_back_to_mirror=True,
                    ),
                )
                for k, s, m in views
            ]

    tables = run_command(state, "listing versions", run)
    unverified = next((r for _k, rows in tables for r in rows if r.state == "unverified"), None)
    if unverified is not None:
        state.warn(
            f"warning: Directus gave no listing ({unverified.error}); showing what the mirror "
            "holds, not compared"
        )
    if as_json:
        data = [_row_json(k, r) for k, rows in tables for r in rows]
        if len(kinds) == 1:
            for row in data:
                del row["kind"]
        state.json(data)
    else:
        _print_tables(tables)
    attention = [(k, r) for k, rows in tables for r in rows if r.state in NEEDS_ATTENTION]
    if attention and all(r.state == "unverified" for _k, r in attention):
        state.warn(
            f"error: versions: Directus gave no listing: {len(attention)} mirror "
            "version(s) not compared"
        )
    elif attention:
        shown = ", ".join(f"{k.name} v{r.version} {MARKS[r.state]}" for k, r in attention[:4])
        more = f" and {len(attention) - 4} more" if len(attention) > 4 else ""
        state.warn(f"error: versions: {len(attention)} version(s) need attention: {shown}{more}")
    sys.exit(EXIT_FAILURE if attention else EXIT_OK)


def _print_tables(tables: list[tuple[ContentKind[Any], list[VersionComparison]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    for k, rows in tables:
        table = Table(title=k.noun, title_justify="left")
        table.add_column("v", justify="right", no_wrap=True)
        table.add_column("name", overflow="fold")
        # Hashes are never cut: they are what a person copies into `get --hash`.
        table.add_column("directus hash", no_wrap=True, min_width=16)
        table.add_column("mirror hash", no_wrap=True, min_width=16)
        table.add_column("state", overflow="fold")
        for r in rows:
            table.add_row(
                str(r.version),
                r.version_name or "",
                r.directus_hash or "-",
                r.mirror_hash or "-",
                MARKS[r.state] + (f": {r.error}" if r.error and r.state != "unverified" else ""),
                style="bold" if r.state in ("missing", "differs", "refused") else None,
            )
        console.print(table)
