"""sync_versions: one version's failure never costs another its copy."""

import pytest

from storybench_prompts import (
    PROMPT_SETS,
    DirectusConnectionError,
    InMemoryMirror,
    InvalidPromptSetError,
    Problem,
    sync_versions,
)
from tests.factories import flat_set
from tests.fakes import ScriptedOrigin

pytestmark = pytest.mark.anyio


class PickyOrigin(ScriptedOrigin):
    def __init__(self, failures: dict[int, BaseException]) -> None:
        super().__init__({v: flat_set(v, text_suffix=" new") for v in (1, 2, 3, 4)})
        self.failures = failures

    async def get(self, version: int):
        if version in self.failures:
            raise self.failures[version]
        return await super().get(version)


async def test_refused_and_failed_versions_keep_their_mirror_copy():
    origin = PickyOrigin(
        {
            2: InvalidPromptSetError(
                [Problem('v2 > sequence "S" (id 1) > prompt "p" (id 2) > text', "empty")]
            ),
            3: DirectusConnectionError("reset"),
        }
    )
    mirror = InMemoryMirror([flat_set(v) for v in (1, 2, 3)], kind=PROMPT_SETS)
    results = await sync_versions(origin, mirror, activate=2)
    assert mirror.active_version is None  # version 2 was refused: nothing activated
    assert [(r.version, r.outcome) for r in results] == [
        (1, "updated"),
        (2, "refused"),
        (3, "failed"),
        (4, "new"),
    ]
    assert "text: empty" in str(results[1].error)
    assert await mirror.stored_hash(2) == flat_set(2).config_hash
    assert await mirror.stored_hash(3) == flat_set(3).config_hash
    assert await mirror.stored_hash(1) == flat_set(1, text_suffix=" new").config_hash
    await sync_versions(origin, mirror, [4], activate=4)
    assert mirror.active_version == 4


async def test_dry_run_writes_nothing():
    origin = PickyOrigin({})
    mirror = InMemoryMirror([flat_set(1, text_suffix=" new"), flat_set(2)], kind=PROMPT_SETS)
    results = await sync_versions(origin, mirror, dry_run=True)
    assert [r.outcome for r in results] == ["unchanged", "updated", "new", "new"]
    assert mirror.saves == 0
    assert await mirror.stored_hash(3) is None


async def test_listing_failure_raises():
    origin = PickyOrigin({})
    origin.error = DirectusConnectionError("down")
    with pytest.raises(DirectusConnectionError):
        await sync_versions(origin, InMemoryMirror(kind=PROMPT_SETS))


@pytest.mark.anyio
async def test_a_failed_latest_never_moves_the_active_set_down():
    from storybench_prompts import DirectusTimeoutError, InMemoryMirror
    from tests.fakes import ScriptedOrigin

    class Origin(ScriptedOrigin):
        broken: frozenset[int] = frozenset()

        async def get(self, version):
            if version in self.broken:
                raise DirectusTimeoutError("Directus did not answer within 60 s")
            return await super().get(version)

    origin = Origin({1: flat_set(1), 2: flat_set(2), 3: flat_set(3)})
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    await sync_versions(origin, mirror, None, activate_highest=True)
    assert mirror.active_version == 3
    origin.broken = frozenset({3})
    results = await sync_versions(origin, mirror, None, activate_highest=True)
    assert {r.version: r.outcome for r in results}[3] == "failed"
    assert mirror.active_version == 3  # still the latest published; not moved down to 2


async def test_a_first_sync_into_an_empty_mirror_leaves_the_highest_version_active():
    # storybench's reader, find_one({"is_active": True}), must find something afterwards.
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    await sync_versions(ScriptedOrigin(), mirror)
    assert mirror.active_version == 3
    await mirror.activate(2)  # someone chose another: a later sync does not override it
    await sync_versions(ScriptedOrigin(), mirror)
    assert mirror.active_version == 2
    fresh = InMemoryMirror(kind=PROMPT_SETS)
    await sync_versions(ScriptedOrigin(), fresh, activate_if_none=False)
    assert fresh.active_version is None
