"""Version comparison and health checks against the real Directus, with in-memory mirrors."""

import pytest

from storybench_prompts import DirectusSource, InMemoryMirror, MirrorUnavailableError
from storybench_prompts._operations import compare_versions, run_checks
from tests.factories import flat_set

pytestmark = [pytest.mark.anyio, pytest.mark.directus]


async def test_compare_marks_same_missing_differs_and_mirror_only(directus):
    async with DirectusSource(directus.url, directus.readonly_token) as source:
        real_v1 = await source.get(1)
        mirror = InMemoryMirror([real_v1, flat_set(2, directus_id=2), flat_set(77)])
        rows = await compare_versions(source, mirror)
    states = {r.version: r.state for r in rows}
    assert states == {1: "same", 2: "differs", 3: "missing", 77: "mirror_only"}
    differs = next(r for r in rows if r.version == 2)
    assert differs.mirror_hash == flat_set(2, directus_id=2).config_hash
    assert differs.directus_hash != differs.mirror_hash


class UnwritableMirror(InMemoryMirror):
    async def check_writable(self) -> None:
        raise MirrorUnavailableError("read-only file system")


async def test_checks_report_each_part(directus):
    async with DirectusSource(directus.url, directus.readonly_token) as source:
        empty = await run_checks(source, InMemoryMirror())
        latest = await source.latest()
        stale = await run_checks(source, InMemoryMirror([await source.get(1)]))
        good = await run_checks(source, InMemoryMirror([latest]))
        broken = await run_checks(source, UnwritableMirror([latest]))
    by_name = {r.name: r for r in empty}
    assert by_name["directus"].ok
    assert by_name["schema"].ok
    assert by_name["mirror"].ok
    assert not by_name["freshness"].ok
    assert "sync" in by_name["freshness"].detail
    assert not {r.name: r for r in stale}["freshness"].ok
    assert all(r.ok for r in good), good
    assert not {r.name: r for r in broken}["mirror"].ok


async def test_checks_with_a_bad_token(directus):
    async with DirectusSource(directus.url, "not-the-token") as source:
        results = await run_checks(source, InMemoryMirror())
    by_name = {r.name: r for r in results}
    assert not by_name["directus"].ok
    assert "DIRECTUS_TOKEN" in by_name["directus"].detail
    assert not by_name["schema"].ok
