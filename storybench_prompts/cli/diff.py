"""``diff``: what changed between two versions, or two recorded hashes, of one kind.

Exit codes as ``diff``'s: 0 identical, 1 different, 2 trouble (a set that cannot be read, a
bad argument).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any

import anyio
import click

from .._exceptions import StorybenchPromptsError
from ..content.kinds import KINDS, ContentKind
from .app import EXIT_USAGE, State, cli, fail, mirror_for

if TYPE_CHECKING:
    from ..content.models import VersionedContent

EXIT_SAME = 0
EXIT_DIFFERENT = 1
EXIT_TROUBLE = EXIT_USAGE

_HASH = re.compile(r"[0-9a-f]{6,16}")


def _reference(text: str, where: str) -> int | str | None:
    """A version number, a config_hash (or a unique prefix of at least 6 characters, as git
    takes it; one of digits alone is a version number), or None for ``latest``."""
    if text == "latest":
        return None
    text = text.lower()  # as get --hash takes it
    if text.isdigit() and len(text) < 16:
        if int(text) > 0:
            return int(text)
    elif _HASH.fullmatch(text):
        return text
    raise click.BadParameter(
        "a version number, `latest`, or a config_hash (or a unique prefix of at least 6 of "
        "its lowercase hex characters)",
        param_hint=where,
    )


async def _read(repository: Any, reference: int | str | None) -> VersionedContent:
    content: VersionedContent
    if reference is None:
        content = await repository.latest()
    elif isinstance(reference, str):
        content = await repository.get_by_hash(reference)
    else:
        content = await repository.get(reference)
    return content


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option(
    "--kind", type=click.Choice(["prompts", "evaluations"]), default="prompts", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="SetDiff.as_json(): identical, changes.")
@click.pass_obj
def diff(state: State, a: str, b: str, kind: str, as_json: bool) -> None:
    """Compare A and B: each a version number, `latest`, or a config_hash a run recorded.

    Versions are read through the stack (cache, Directus, mirror); hashes from the mirror.
    Exit 0 when identical, 1 when they differ, 2 on trouble, as diff does.
    """
    from ..ops.diff import diff_sets, render_diff

    content_kind: ContentKind[Any] = KINDS[kind]
    refs = (_reference(a, "A"), _reference(b, "B"))

    async def run() -> tuple[VersionedContent, VersionedContent]:
        from .get import resolve_hash

        hashes = [r for r in refs if isinstance(r, str)]
        if hashes:
            # Recorded hashes are the mirror's (a fresh process has nothing cached).
            async with mirror_for(state, content_kind) as mirror:
                full = {h: await resolve_hash(mirror, content_kind, h) for h in hashes}
                if len(hashes) == 2:
                    return await _read(mirror, full[hashes[0]]), await _read(
                        mirror, full[hashes[1]]
                    )
        resolved = [full[r] if isinstance(r, str) else r for r in refs] if hashes else refs
        from .._compose import build_stack

        async with build_stack(state.settings) as stack:
            repository = stack.repository(content_kind)
            return await _read(repository, resolved[0]), await _read(repository, resolved[1])

    try:
        first, second = anyio.run(run)
    except StorybenchPromptsError as exc:
        fail(state, f"reading {content_kind.noun}s {a} and {b}", exc, code=EXIT_TROUBLE)
    result = diff_sets(first, second)
    if as_json:
        state.data(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        click.echo(state.redact(render_diff(result, color=color)), nl=False, color=color)
    sys.exit(EXIT_SAME if result.identical else EXIT_DIFFERENT)
