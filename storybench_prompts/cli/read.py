"""``get`` and ``versions``: what would be served, and Directus beside the mirror."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..content.kinds import KINDS, ContentKind
from .app import KIND_CHOICES, State, cli, kinds_for, mirror_for, run_command, source_for, stack_for

if TYPE_CHECKING:
    from ..content.models import VersionedContent


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="prompts", show_default=True)
@click.pass_obj
def versions(state: State, as_json: bool, kind: str) -> None:
    """Published versions in Directus beside what the mirror holds."""
    from ..ops.checks import compare_versions

    kinds = kinds_for(kind)

    async def run() -> Any:
        async with stack_for(state, kinds) as views:
            return [
                (k, await compare_versions(s, m, concurrency=state.settings.concurrency))
                for k, s, m in views
            ]

    tables = run_command(state, "listing versions", run)
    if as_json:
        data = [
            {
                "kind": k.name,
                "version": r.version,
                "version_name": r.version_name,
                "directus_hash": r.directus_hash,
                "mirror_hash": r.mirror_hash,
                "state": r.state,
                "error": r.error,
            }
            for k, rows in tables
            for r in rows
        ]
        if len(kinds) == 1:
            for row in data:
                del row["kind"]
        state.data(json.dumps(data, indent=2))
        return
    marks = {
        "same": "in mirror",
        "missing": "MISSING from mirror",
        "differs": "DIFFERS",
        "mirror_only": "mirror only (not published)",
        "unknown": "directus error",
    }
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    for k, rows in tables:
        table = Table("version", "name", "directus hash", "mirror hash", "state", title=k.noun)
        for r in rows:
            table.add_row(
                str(r.version),
                r.version_name or "",
                r.directus_hash or "-",
                r.mirror_hash or "-",
                marks[r.state] + (f": {r.error}" if r.error else ""),
            )
        console.print(table)


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


@cli.command()
@click.argument("version", required=False)
@click.option("--hash", "config_hash", default=None, help="The config_hash a run recorded.")
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
@click.pass_obj
def get(
    state: State,
    version: str | None,
    config_hash: str | None,
    as_json: bool,
    source_name: str,
    kind: str,
) -> None:
    """Print a set: VERSION is a number or `latest`; or --hash HASH for exactly the content
    a run recorded, even after the version was edited or withdrawn in Directus."""
    if (version is None) == (config_hash is None):
        raise click.UsageError("give a VERSION (a number or `latest`) or --hash, not both")
    if version is not None and version != "latest" and not version.isdigit():
        raise click.BadParameter("a version number or `latest`", param_hint="VERSION")
    if config_hash is not None and source_name == "directus":
        raise click.UsageError("--hash reads the mirror (Directus keeps no old content)")
    number = None if version in (None, "latest") else int(version)
    content_kind = KINDS[kind]

    async def run() -> VersionedContent:
        served: VersionedContent
        if source_name == "mirror" or config_hash is not None:
            async with mirror_for(state, content_kind) as mirror:
                if config_hash is not None:
                    served = await mirror.get_by_hash(config_hash)
                else:
                    served = await (mirror.latest() if number is None else mirror.get(number))
                return served
        if source_name == "directus":
            async with source_for(state).for_kind(content_kind) as source:
                served = await (source.latest() if number is None else source.get(number))
                return served
        from .._compose import build_stack

        async with build_stack(state.settings) as stack:
            repo = stack.repository(content_kind)
            served = await (repo.latest() if number is None else repo.get(number))
            return served

    what = f"{content_kind.noun} {config_hash or version}"
    content = run_command(state, f"reading {what}", run)
    if as_json:
        state.data(json.dumps(content.to_json_dict(), indent=2, ensure_ascii=False))
    else:
        _print_readable(state, content_kind, content)
