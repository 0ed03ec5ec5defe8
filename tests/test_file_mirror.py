"""File mirror specifics: corrupt files, atomic writes, two writer processes."""

import json
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from storybench_prompts import (
    FileMirror,
    MirrorCorruptError,
    MirrorUnavailableError,
    Prompt,
    PromptSet,
    PromptSetNotFoundError,
)
from storybench_prompts.content.kinds import EVALUATION_SETS, PROMPT_SETS
from storybench_prompts.mirrors import file as _file_mirror
from tests.factories import flat_evaluation_set, flat_set, lax

pytestmark = pytest.mark.anyio


async def test_corrupt_file_names_the_file_and_others_still_work(tmp_path):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    await mirror.save(flat_set(2))
    mirror.path_for(1).write_text('{"prompt_set": {"version": 1, "sequ')
    with pytest.raises(MirrorCorruptError) as info:
        await mirror.get(1)
    assert str(mirror.path_for(1)) in str(info.value)
    assert info.value.location == str(mirror.path_for(1))
    assert (await mirror.get(2)).version == 2
    assert [i.version for i in await mirror.versions()] == [2]


async def test_hand_edited_file_is_refused(tmp_path):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    path = mirror.path_for(1)
    document = json.loads(path.read_text())
    document["prompt_set"]["sequences"]["Seq0"][0]["text"] = "edited by hand"
    path.write_text(json.dumps(document))
    with pytest.raises(MirrorCorruptError, match="changed after it was written"):
        await mirror.get(1)
    document["prompt_set"]["sequences"]["Seq0"][0]["text"] = ""
    path.write_text(json.dumps(document))
    with pytest.raises(MirrorCorruptError, match="invalid prompt set"):
        await mirror.get(1)
    # A good save replaces the corrupt file.
    assert await mirror.save(flat_set(1)) == "updated"
    assert (await mirror.get(1)).config_hash == flat_set(1).config_hash


async def test_crash_mid_write_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    before = mirror.path_for(1).read_bytes()

    def power_cut(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(_file_mirror.os, "replace", power_cut)
    with pytest.raises(MirrorUnavailableError, match="No space left"):
        await mirror.save(flat_set(1, text_suffix=" new"))
    monkeypatch.undo()
    assert mirror.path_for(1).read_bytes() == before
    assert temporary_files(tmp_path) == []


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


WRITER = """
import anyio, sys
from storybench_prompts import PROMPT_SETS, FileMirror
from tests.factories import flat_set
async def main():
    mirror = FileMirror(sys.argv[1], kind=PROMPT_SETS)
    for i in range(40):
        for v in (1, 2, 3):
            await mirror.save(flat_set(v, prompts=20, text_suffix=f" {sys.argv[2]}{i}"))
anyio.run(main)
"""


async def test_two_writer_processes_leave_valid_snapshots(tmp_path):
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag], cwd=root)
        for tag in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    for v in (1, 2, 3):
        stored = await mirror.get(v)  # decodes and verifies the hash
        assert stored.sequences["Seq0"][0].text.endswith(("a39", "b39"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "by-hash",
        "prompt-set-v1.json",
        "prompt-set-v2.json",
        "prompt-set-v3.json",
    ]
    # Every content either writer saved has its record, each written once and whole.
    records = sorted((tmp_path / "by-hash").iterdir())
    assert len(records) == 2 * 40 * 3
    for tag in ("a", "b"):
        content = flat_set(2, prompts=20, text_suffix=f" {tag}17")
        assert (await mirror.get_by_hash(content.config_hash)).config_hash == content.config_hash
    assert temporary_files(tmp_path) == []


async def test_unwritable_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    mirror = FileMirror(blocker / "mirror", kind=PROMPT_SETS)
    with pytest.raises(MirrorUnavailableError):
        await mirror.check_writable()
    with pytest.raises(MirrorUnavailableError):
        await mirror.save(flat_set(1))


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(tmp_path / "m"))
    assert FileMirror(kind=PROMPT_SETS).directory == tmp_path / "m"
    monkeypatch.delenv("STORYBENCH_PROMPTS_MIRROR_DIR")
    assert FileMirror(kind=PROMPT_SETS).directory.name == "mirror"
    assert "storybench-prompts" in str(FileMirror(kind=PROMPT_SETS).directory)


# -- records by hash ------------------------------------------------------------------------


async def test_records_are_written_once_and_never_changed(tmp_path):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    first, edited = flat_set(1), flat_set(1, text_suffix=" edited")
    await mirror.save(first)
    record = mirror.record_path(first.config_hash)
    before = record.read_bytes(), record.stat().st_ino, record.stat().st_mtime_ns
    await mirror.save(edited)
    await mirror.save(first)
    await mirror.withdraw(1)
    await mirror.save(edited)
    assert (record.read_bytes(), record.stat().st_ino, record.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (tmp_path / "by-hash").iterdir()) == sorted(
        [f"prompt-set-{first.config_hash}.json", f"prompt-set-{edited.config_hash}.json"]
    )
    assert (await mirror.get_by_hash(first.config_hash)).config_hash == first.config_hash


async def test_a_tampered_record_is_refused(tmp_path):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    content = flat_set(1)
    await mirror.save(content)
    record = mirror.record_path(content.config_hash)
    document = json.loads(record.read_text())
    document["prompt_set"]["sequences"]["Seq0"][0]["text"] = "edited by hand"
    record.write_text(json.dumps(document))
    # Never served: the version's snapshot still holds exactly that content, so it is served...
    served = await mirror.get_by_hash(content.config_hash)
    assert served.sequences["Seq0"][0].text == content.sequences["Seq0"][0].text
    # ...and once no intact copy is left, the tampered record is refused.
    await mirror.save(flat_set(1, text_suffix=" v2"))
    with pytest.raises(MirrorCorruptError, match="changed after it was written"):
        await mirror.get_by_hash(content.config_hash)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "0123", "ABCDEF0123456789", ""])
async def test_get_by_hash_takes_only_hashes(tmp_path, bad):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    with pytest.raises(PromptSetNotFoundError):
        await mirror.get_by_hash(bad)


async def test_snapshots_from_before_records_still_answer_by_hash(tmp_path):
    """A 0.1 directory: snapshots only, schema 1, no records."""
    content = flat_set(4)
    legacy = {
        "schema_version": 1,
        "config_hash": content.config_hash,
        "content_hash": content.content_hash,
        "origin": "directus",
        "fetched_at": 1.0,
        "saved_at": 1.0,
        "prompt_set": {**content.to_storybench(), "version_name": content.version_name},
    }
    (tmp_path / "prompt-set-v4.json").write_text(json.dumps(legacy))
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    assert (await mirror.get(4)).config_hash == content.config_hash
    assert (await mirror.get_by_hash(content.config_hash)).config_hash == content.config_hash
    assert await mirror.save(content) == "unchanged"  # and its record is written now
    assert mirror.record_path(content.config_hash).exists()


async def test_each_kind_has_its_own_files(tmp_path):
    prompts = FileMirror(tmp_path, kind=PROMPT_SETS)
    evaluations = prompts.for_kind(EVALUATION_SETS)
    await prompts.save(flat_set(1))
    await evaluations.save(flat_evaluation_set(1))
    await evaluations.save(flat_evaluation_set(2))
    assert evaluations.path_for(2).name == "evaluation-set-v2.json"
    assert [i.version for i in await prompts.versions()] == [1]
    assert [i.version for i in await evaluations.versions()] == [1, 2]
    document = json.loads(evaluations.path_for(2).read_text())
    assert document["evaluation_set"]["criteria"] == flat_evaluation_set(2).body()["criteria"]
    assert (await evaluations.latest()).config_hash == flat_evaluation_set(2).config_hash


async def test_withdrawal_is_kept_in_the_snapshot(tmp_path):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    assert await mirror.withdraw(1) is True
    document = json.loads(mirror.path_for(1).read_text())
    assert isinstance(document["withdrawn_at"], float)
    assert (
        await FileMirror(tmp_path, kind=PROMPT_SETS).stored_hash(1) is None
    )  # a fresh instance sees it too
    mirror.path_for(2).write_text("{broken")
    assert await mirror.withdraw(2) is False  # a corrupt snapshot is not served anyway


# -- write failures are typed ---------------------------------------------------------------


async def test_content_that_cannot_be_encoded_is_a_typed_error(tmp_path):
    mirror = FileMirror(tmp_path, kind=lax(PROMPT_SETS))
    await mirror.save(flat_set(1))
    before = mirror.path_for(1).read_bytes()
    # The rules refuse lone surrogates before any write; if one ever got this far, the
    # mirror still answers with its own error and keeps its copy.
    bad = PromptSet(version=1, sequences={"S": (Prompt(name="p", text="lone \ud800"),)})
    with pytest.raises(MirrorUnavailableError, match="cannot be stored"):
        await mirror.save(bad)
    assert mirror.path_for(1).read_bytes() == before
    assert temporary_files(tmp_path) == []


@pytest.mark.parametrize(
    "error", [OSError(5, "Input/output error"), ValueError("embedded null byte")]
)
async def test_os_and_value_errors_on_write_are_typed(tmp_path, monkeypatch, error):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(_file_mirror.os, "fsync", fail)
    with pytest.raises(MirrorUnavailableError):
        await mirror.save(flat_set(1))
    monkeypatch.undo()
    assert temporary_files(tmp_path) == []
    assert await mirror.versions() == []


# -- cancellation ---------------------------------------------------------------------------


async def cancelled_save(mirror: FileMirror, content: PromptSet, checkpoints: int) -> bool:
    """Run a save and cancel it after ``checkpoints`` scheduler steps; True if it finished."""
    finished = False

    async def run(scope: anyio.CancelScope) -> None:
        nonlocal finished
        with scope:
            await mirror.save(content)
            finished = True

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, scope)
        for _ in range(checkpoints):
            await anyio.lowlevel.checkpoint()
        scope.cancel()
    return finished


async def test_a_cancelled_save_never_leaves_a_temporary_file(tmp_path):
    """Cancel at every point a save can be cancelled at: before, between and during writes."""
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    finished_in_a_row = 0
    step = 0
    while finished_in_a_row < 5:
        assert step < 5000, "the save never finished"
        content = flat_set(1, prompts=50, text_suffix=f" {step}")
        finished = await cancelled_save(mirror, content, step)
        finished_in_a_row = finished_in_a_row + 1 if finished else 0
        assert temporary_files(tmp_path) == [], f"cancelled after {step} steps"
        stored = await mirror.get(1)  # whole and valid: the old content or the new
        assert stored.version == 1
        if finished:
            assert stored.config_hash == content.config_hash
        step += 1
    # Cancellation by deadline, at many small delays, the way callers use it.
    for i in range(40):
        with anyio.move_on_after(i * 0.0002):
            await mirror.save(flat_set(1, prompts=50, text_suffix=f" t{i}"))
        assert temporary_files(tmp_path) == []
    assert (await mirror.get(1)).version == 1


@pytest.mark.anyio
async def test_a_stalled_read_is_abandoned_at_mirror_timeout(tmp_path):
    import os
    import threading
    import time

    import anyio

    from storybench_prompts import (
        CachePolicy,
        CachingRepository,
        DirectusConnectionError,
        PromptSetUnavailableError,
    )
    from tests.fakes import ScriptedOrigin

    # A FIFO stands in for a file on a stalled network mount: reading it blocks.
    fifo = tmp_path / "prompt-set-v1.json"
    os.mkfifo(fifo)
    origin = ScriptedOrigin()
    origin.error = DirectusConnectionError("refused")
    started = time.monotonic()
    try:
        with anyio.fail_after(10):
            async with CachingRepository(
                origin,
                FileMirror(tmp_path, kind=PROMPT_SETS),
                policy=CachePolicy(mirror_timeout=0.5),
            ) as repo:
                with pytest.raises(PromptSetUnavailableError, match="did not answer"):
                    await repo.get(1)
        assert time.monotonic() - started < 5
    finally:
        # Release the abandoned reader thread.
        threading.Thread(target=lambda: fifo.write_bytes(b"{}"), daemon=True).start()


# -- a corrupt record is repaired -----------------------------------------------------------


async def test_a_truncated_record_is_served_from_the_snapshot_and_repaired_by_the_next_save(
    tmp_path,
):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    content = flat_set(1)
    await mirror.save(content)
    record = mirror.record_path(content.config_hash)
    record.write_bytes(record.read_bytes()[:40])  # truncated on disk
    # The read does not give up while the version's snapshot holds that very content...
    assert (await mirror.get_by_hash(content.config_hash)).config_hash == content.config_hash
    assert record.read_bytes().endswith(b"")  # ...and a read never writes
    # ...and saving the same content again (the documented fix: `sync --version 1`) repairs it.
    assert await mirror.save(content) == "unchanged"
    assert json.loads(record.read_text())["config_hash"] == content.config_hash
    (tmp_path / "prompt-set-v1.json").unlink()
    assert (await mirror.get_by_hash(content.config_hash)).config_hash == content.config_hash


async def test_a_record_holding_other_content_is_never_served(tmp_path):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    one, two = flat_set(1), flat_set(2)
    await mirror.save(one)
    await mirror.save(two)
    record = mirror.record_path(one.config_hash)
    record.write_bytes(mirror.record_path(two.config_hash).read_bytes())  # swapped by hand
    served = await mirror.get_by_hash(one.config_hash)  # the snapshot of v1 has it
    assert served.config_hash == one.config_hash
    (tmp_path / "prompt-set-v1.json").unlink()
    with pytest.raises(MirrorCorruptError):
        await mirror.get_by_hash(one.config_hash)


@pytest.mark.anyio
@pytest.mark.parametrize("fetched_at", ["1e400", "NaN", "-1e20", "1e20"])
async def test_a_snapshot_read_at_no_possible_time_is_corrupt_not_a_crash(tmp_path, fetched_at):
    from storybench_prompts import PROMPT_SETS, FileMirror, MirrorCorruptError
    from tests.factories import flat_set

    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    await mirror.save(flat_set(1))
    path = mirror.path_for(1)
    text = path.read_text()
    import re

    path.write_text(re.sub(r'"fetched_at": [^,]+', f'"fetched_at": {fetched_at}', text))
    with pytest.raises(MirrorCorruptError, match="not a time"):
        await mirror.get(1)


def test_a_reader_that_stops_reading_ends_the_command_quietly_with_exit_0(tmp_path):
    import os
    import subprocess
    import sys

    import anyio

    from storybench_prompts import PROMPT_SETS, FileMirror
    from tests.factories import flat_set

    anyio.run(FileMirror(tmp_path, kind=PROMPT_SETS).save, flat_set(1, sequences=40, prompts=30))
    env = {"PATH": os.environ.get("PATH", ""), "STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path)}
    for _ in range(3):  # `| head -1`: the pipe closes after the first line
        process = subprocess.Popen(
            [sys.executable, "-m", "storybench_prompts", "get", "1", "--source", "mirror"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        process.stdout.readline()
        process.stdout.close()
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert err == b""
