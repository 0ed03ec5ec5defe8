"""export_snapshot: a file-mirror snapshot with its manifest, every set re-hashed, written whole
or not at all (here from an offline stack over another snapshot: no Directus needed)."""

from __future__ import annotations

import json

import pytest

from storybench_prompts import (
    EVALUATION_SETS,
    PROMPT_SETS,
    ConfigurationError,
    FileMirror,
    Lock,
    LockedContentNotFoundError,
    Settings,
)
from storybench_prompts._compose import build_stack
from storybench_prompts.ops.export import export_snapshot
from tests.factories import flat_evaluation_set, flat_set

pytestmark = pytest.mark.anyio


@pytest.fixture
async def source(tmp_path):
    directory = tmp_path / "source"
    for v in (1, 2, 3):
        await FileMirror(directory, kind=PROMPT_SETS).save(flat_set(v))
    for v in (1, 2):
        await FileMirror(directory, kind=EVALUATION_SETS).save(flat_evaluation_set(v))
    return directory


def stack_over(directory):
    return build_stack(Settings(_env_file=None, offline=True, mirror_dir=directory))


async def test_every_published_version_of_both_kinds(source, tmp_path):
    target = tmp_path / "out" / "snapshot"
    async with stack_over(source) as stack:
        manifest = await export_snapshot(stack, target, directus_url="https://u:p@cms.example.org/")
    data = json.loads((target / "manifest.json").read_text())
    assert data == manifest.as_json()
    assert data["format"] == 1
    assert data["directus_url"] == "https://cms.example.org/"  # never credentials
    assert data["kinds"] == {
        "prompts": [{"version": v, "config_hash": flat_set(v).config_hash} for v in (1, 2, 3)],
        "evaluations": [
            {"version": v, "config_hash": flat_evaluation_set(v).config_hash} for v in (1, 2)
        ],
    }
    exported = FileMirror(target, kind=PROMPT_SETS)
    assert [i.version for i in await exported.versions()] == [1, 2, 3]
    assert (await exported.get_by_hash(flat_set(2).config_hash)).version == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["snapshot"]  # no staging left


async def test_just_what_a_lock_names(source, tmp_path):
    lock = Lock.from_sets(flat_set(2), flat_evaluation_set(1), directus_url=None)
    async with stack_over(source) as stack:
        manifest = await export_snapshot(stack, tmp_path / "snap", lock=lock)
    assert {k: [s.version for s in v] for k, v in manifest.kinds.items()} == {
        "prompts": [2],
        "evaluations": [1],
    }
    assert sorted(p.name for p in (tmp_path / "snap").glob("*.json")) == [
        "evaluation-set-v1.json",
        "manifest.json",
        "prompt-set-v2.json",
    ]


async def test_a_lock_whose_content_is_nowhere_exports_nothing(source, tmp_path):
    lock = Lock.from_sets(flat_set(2, text_suffix=" (other)"), None, directus_url=None)
    async with stack_over(source) as stack:
        with pytest.raises(LockedContentNotFoundError):
            await export_snapshot(stack, tmp_path / "snap", lock=lock)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


async def test_a_copy_that_does_not_rehash_is_never_exported(source, tmp_path):
    from storybench_prompts.mirrors import integrity

    snapshot = source / "prompt-set-v2.json"
    document = json.loads(snapshot.read_text())
    document["prompt_set"]["sequences"]["Seq0"][0]["text"] = "Tampered."
    snapshot.write_text(json.dumps(document))
    before = integrity.failures()
    async with stack_over(source) as stack:
        manifest = await export_snapshot(stack, tmp_path / "snap")
    assert [s.version for s in manifest.kinds["prompts"]] == [1, 3]  # the source lacks a good v2
    assert not (tmp_path / "snap" / "prompt-set-v2.json").exists()
    assert integrity.failures() > before
    # Locked, v2 is found at the next place: its intact record by hash.
    lock = Lock.from_sets(flat_set(2), None, directus_url=None)
    async with stack_over(source) as stack:
        locked = await export_snapshot(stack, tmp_path / "locked", lock=lock)
    assert [s.config_hash for s in locked.kinds["prompts"]] == [flat_set(2).config_hash]
    record = source / "by-hash" / f"prompt-set-{flat_set(2).config_hash}.json"
    record.write_text(json.dumps(document))  # now no copy anywhere hashes to it
    async with stack_over(source) as stack:
        with pytest.raises(LockedContentNotFoundError, match=flat_set(2).config_hash):
            await export_snapshot(stack, tmp_path / "refused", lock=lock)
    assert not (tmp_path / "refused").exists()  # nothing half-written


async def test_into_an_empty_directory_but_never_a_full_one(source, tmp_path):
    (tmp_path / "empty").mkdir()
    async with stack_over(source) as stack:
        await export_snapshot(stack, tmp_path / "empty")
        with pytest.raises(ConfigurationError, match="not empty"):
            await export_snapshot(stack, tmp_path / "empty")
    assert (tmp_path / "empty" / "manifest.json").is_file()
