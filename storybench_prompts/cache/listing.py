"""Listing published versions, with the outage rules: the mirror's listing when Directus
cannot answer, and at once (no request) while Directus is known to be failing and no probe is
due."""

from __future__ import annotations

from typing import Any

from .._exceptions import PromptSetUnavailableError, SourceUnavailableError, StorybenchPromptsError
from ..content.kinds import ContentKind
from ..content.models import VersionInfo
from ..sources.attempts import observing_attempts
from ..sources.base import PromptRepository
from .mirror_io import MirrorIO
from .outage import OutageGate

__all__ = ["list_versions"]


async def list_versions(
    origin: PromptRepository[Any],
    gate: OutageGate,
    mirror: MirrorIO[Any] | None,
    kind: ContentKind[Any],
) -> list[VersionInfo]:
    slot = None
    if gate.failing:
        slot = gate.probe()
        if slot is None:
            held = await mirror.versions() if mirror is not None else []
            if held:
                return held
            raise PromptSetUnavailableError(
                f"no source could list {kind.noun} versions: Directus has been failing and the "
                f"mirror {'is empty' if mirror is not None else 'is not configured'}",
                causes=[
                    gate.last_exception
                    or SourceUnavailableError(gate.status.last_error or "failing")
                ],
            )
    try:

        def on_failed(exc: BaseException) -> None:
            gate.failed(exc, probe=slot is not None)

        with observing_attempts(on_failed, max_attempts=1 if slot else None):
            if slot is not None:
                with slot:
                    listed = await origin.versions()
            else:
                listed = await origin.versions()
    except SourceUnavailableError as exc:
        gate.failed(exc, probe=slot is not None)
        refusal = gate.refusal()
        if refusal is not None:
            raise refusal from exc
        return await _listed_by_mirror(exc, mirror, kind)
    except StorybenchPromptsError as exc:  # a misconfiguration: never served around
        gate.failed(exc)
        raise
    gate.answered()
    return listed


async def _listed_by_mirror(
    exc: SourceUnavailableError, mirror: MirrorIO[Any] | None, kind: ContentKind[Any]
) -> list[VersionInfo]:
    if mirror is None:
        raise exc
    try:
        held = await mirror.versions()
    except StorybenchPromptsError as mirror_exc:
        raise PromptSetUnavailableError(
            "no source could list versions", causes=[exc, mirror_exc]
        ) from exc
    if not held:
        raise PromptSetUnavailableError(
            f"no source could list {kind.noun} versions (the mirror is empty)", causes=[exc]
        ) from exc
    return held
