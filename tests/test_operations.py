"""Version comparison and health checks against the real Directus, with in-memory mirrors,
for both content kinds."""

import pytest

from storybench_prompts import PROMPT_SETS, DirectusSource, InMemoryMirror, MirrorUnavailableError
from storybench_prompts.content.kinds import EVALUATION_SETS
from storybench_prompts.ops.checks import run_checks
from storybench_prompts.ops.compare import compare_versions
from tests.factories import flat_set

pytestmark = [pytest.mark.anyio, pytest.mark.directus]


async def test_compare_marks_same_missing_differs_and_mirror_only(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as source:
        real_v1 = await source.get(1)
        mirror = InMemoryMirror(
            [real_v1, flat_set(2, directus_id=2), flat_set(77)], kind=PROMPT_SETS
        )
        rows = await compare_versions(source, mirror)
    states = {r.version: r.state for r in rows}
    assert states == {1: "same", 2: "differs", 3: "missing", 77: "mirror_only"}
    differs = next(r for r in rows if r.version == 2)
    assert differs.mirror_hash == flat_set(2, directus_id=2).config_hash
    assert differs.directus_hash != differs.mirror_hash


async def test_compare_evaluation_sets(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=EVALUATION_SETS) as ev:
        v3 = await ev.get(3)
        rows = await compare_versions(
            ev, InMemoryMirror([await ev.get(1), v3], kind=EVALUATION_SETS)
        )
    assert {r.version: r.state for r in rows} == {1: "same", 2: "missing", 3: "same"}
    assert next(r for r in rows if r.version == 3).directus_hash == v3.config_hash


class UnwritableMirror(InMemoryMirror):
    async def check_writable(self) -> None:
        raise MirrorUnavailableError("read-only file system")


def by_name(results, kind="prompts"):
    return {r.name: r for r in results if r.kind in (kind, None)}


async def test_checks_report_each_part(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as source:
        empty = await run_checks([(source, InMemoryMirror(kind=PROMPT_SETS))])
        latest = await source.latest()
        stale = await run_checks(
            [(source, InMemoryMirror([await source.get(1)], kind=PROMPT_SETS))]
        )
        good = await run_checks([(source, InMemoryMirror([latest], kind=PROMPT_SETS))])
        broken = await run_checks([(source, UnwritableMirror([latest], kind=PROMPT_SETS))])
    assert [(r.name, r.kind) for r in empty] == [
        ("directus", None),
        ("schema", "prompts"),
        ("content", "prompts"),
        ("mirror", "prompts"),
        ("freshness", "prompts"),
    ]
    checks = by_name(empty)
    assert checks["directus"].ok
    assert checks["schema"].ok
    assert checks["schema"].notes == ()  # the full schema has every optional field
    assert checks["mirror"].ok
    assert not checks["freshness"].ok
    assert "no prompt set" in checks["freshness"].detail
    assert "sync" in checks["freshness"].detail
    assert not by_name(stale)["freshness"].ok
    assert "version 3" in by_name(stale)["freshness"].detail
    assert all(r.ok for r in good), good
    assert not by_name(broken)["mirror"].ok


async def test_checks_cover_both_kinds(directus):
    async with DirectusSource(directus.url, directus.readonly_token, kind=PROMPT_SETS) as prompts:
        evaluations = prompts.for_kind(EVALUATION_SETS)
        fresh = InMemoryMirror([await evaluations.get(3)], kind=EVALUATION_SETS)
        results = await run_checks(
            [
                (prompts, InMemoryMirror([await prompts.latest()], kind=PROMPT_SETS)),
                (evaluations, fresh),
            ]
        )
        lagging = await run_checks(
            [(evaluations, InMemoryMirror([await evaluations.get(1)], kind=EVALUATION_SETS))]
        )
    assert [(r.name, r.kind) for r in results] == [
        ("directus", None),
        ("schema", "prompts"),
        ("content", "prompts"),
        ("mirror", "prompts"),
        ("freshness", "prompts"),
        ("schema", "evaluations"),
        ("content", "evaluations"),
        ("mirror", "evaluations"),
        ("freshness", "evaluations"),
    ]
    assert all(r.ok for r in results), results
    assert by_name(results, "evaluations")["schema"].notes == ()
    stale = by_name(lagging, "evaluations")["freshness"]
    assert not stale.ok
    assert "evaluation set version 3" in stale.detail


async def test_checks_with_a_bad_token(directus):
    async with DirectusSource(directus.url, "not-the-token", kind=PROMPT_SETS) as source:
        results = await run_checks([(source, InMemoryMirror(kind=PROMPT_SETS))])
    checks = by_name(results)
    assert not checks["directus"].ok
    assert "DIRECTUS_TOKEN" in checks["directus"].detail
    assert not checks["schema"].ok
    assert "skipped" in checks["schema"].detail


async def test_a_missing_needed_field_fails_the_schema_check(own_directus):
    with own_directus.admin() as admin:
        admin.delete("/fields/prompts/order_in_sequence").raise_for_status()
        admin.delete("/fields/prompts/guidance_notes").raise_for_status()
        admin.delete("/fields/scoring/guidelines").raise_for_status()
    async with DirectusSource(
        own_directus.url, own_directus.readonly_token, kind=PROMPT_SETS
    ) as prompts:
        results = await run_checks(
            [
                (prompts, InMemoryMirror(kind=PROMPT_SETS)),
                (prompts.for_kind(EVALUATION_SETS), InMemoryMirror(kind=PROMPT_SETS)),
            ]
        )
    prompt_schema = by_name(results)["schema"]
    evaluation_schema = by_name(results, "evaluations")["schema"]
    assert not prompt_schema.ok
    assert prompt_schema.detail == "prompt set schema: prompts lacks order_in_sequence"
    assert not evaluation_schema.ok
    assert evaluation_schema.detail == "evaluation set schema: scoring lacks guidelines"


async def test_run_checks_needs_a_pair():
    with pytest.raises(ValueError, match="at least one"):
        await run_checks([])


@pytest.mark.anyio
async def test_versions_with_nothing_to_show_instead_of_directus_raises():
    from storybench_prompts import PROMPT_SETS, DirectusConnectionError, InMemoryMirror
    from storybench_prompts.ops.compare import compare_versions
    from tests.fakes import ScriptedOrigin

    origin = ScriptedOrigin()

    async def down():
        raise DirectusConnectionError("refused")

    origin.versions = down  # type: ignore[method-assign]
    with pytest.raises(DirectusConnectionError):
        await compare_versions(origin, InMemoryMirror(kind=PROMPT_SETS), fall_back_to_mirror=True)


@pytest.mark.anyio
@pytest.mark.parametrize("version", [1.5, "1", "latest", None])
async def test_a_version_that_is_not_an_int_is_a_type_error_cached_or_not(version):
    from storybench_prompts import CachingRepository
    from tests.fakes import ScriptedOrigin

    async with CachingRepository(ScriptedOrigin()) as repo:
        with pytest.raises(TypeError, match="a version is an int"):
            await repo.get(version)
        await repo.latest()  # the latest and v1 cached: neither answers for these
        await repo.get(1)
        with pytest.raises(TypeError, match="a version is an int"):
            await repo.get(version)


@pytest.mark.anyio
async def test_true_is_version_one_cached_or_not():
    from storybench_prompts import CachingRepository
    from tests.fakes import ScriptedOrigin

    async with CachingRepository(ScriptedOrigin()) as repo:
        first = await repo.get(True)
        assert first.version == 1
        assert await repo.get(True) is await repo.get(1)
