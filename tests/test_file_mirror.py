"""File mirror specifics: corrupt files, atomic writes, two writer processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from storybench_prompts import FileMirror, MirrorCorruptError, MirrorUnavailableError, _file_mirror
from tests.factories import flat_set

pytestmark = pytest.mark.anyio


async def test_corrupt_file_names_the_file_and_others_still_work(tmp_path):
    mirror = FileMirror(tmp_path)
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
    mirror = FileMirror(tmp_path)
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
    mirror = FileMirror(tmp_path)
    await mirror.save(flat_set(1))
    before = mirror.path_for(1).read_bytes()

    async def power_cut(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(_file_mirror.aiofiles.os, "replace", power_cut)
    with pytest.raises(MirrorUnavailableError, match="No space left"):
        await mirror.save(flat_set(1, text_suffix=" new"))
    assert mirror.path_for(1).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [mirror.path_for(1).name]  # no temp left


WRITER = """
import anyio, sys
from storybench_prompts import FileMirror
from tests.factories import flat_set
async def main():
    mirror = FileMirror(sys.argv[1])
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
    mirror = FileMirror(tmp_path)
    for v in (1, 2, 3):
        stored = await mirror.get(v)  # decodes and verifies the hash
        assert stored.sequences["Seq0"][0].text.endswith(("a39", "b39"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "prompt-set-v1.json",
        "prompt-set-v2.json",
        "prompt-set-v3.json",
    ]


async def test_unwritable_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    mirror = FileMirror(blocker / "mirror")
    with pytest.raises(MirrorUnavailableError):
        await mirror.check_writable()
    with pytest.raises(MirrorUnavailableError):
        await mirror.save(flat_set(1))


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(tmp_path / "m"))
    assert FileMirror().directory == tmp_path / "m"
    monkeypatch.delenv("STORYBENCH_PROMPTS_MIRROR_DIR")
    assert FileMirror().directory.name == "mirror"
    assert "storybench-prompts" in str(FileMirror().directory)
