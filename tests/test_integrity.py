"""Every copy read from a mirror is re-hashed before it is served: a copy whose content no
longer hashes to its hash is refused (MirrorCorruptError), counted, logged once."""

from __future__ import annotations

import json
import logging

import pytest

from storybench_prompts import (
    EVALUATION_SETS,
    PROMPT_SETS,
    CachingRepository,
    FileMirror,
    InMemoryMirror,
    MirrorCorruptError,
    Prompt,
    PromptSetUnavailableError,
)
from storybench_prompts.content.models import rehash
from storybench_prompts.mirrors import integrity
from tests.factories import flat_evaluation_set, flat_set
from tests.fakes import ScriptedOrigin

pytestmark = pytest.mark.anyio


def tampered(content, text="Tampered."):
    """The same object with one prompt changed: model_copy keeps the hash cached before."""
    _ = content.config_hash
    sequences = dict(content.sequences)
    first = next(iter(sequences))
    sequences[first] = (Prompt(name=sequences[first][0].name, text=text), *sequences[first][1:])
    copy = content.model_copy(update={"sequences": sequences})
    assert copy.config_hash == content.config_hash  # the stale hash it claims
    assert rehash(copy) != content.config_hash  # what its content hashes to
    return copy


def test_rehash_is_computed_from_the_fields_not_cached():
    original = flat_set(3)
    assert rehash(original) == original.config_hash
    assert rehash(tampered(original)) != original.config_hash


async def test_the_memory_mirror_refuses_a_copy_that_no_longer_hashes_to_its_hash(caplog):
    original = flat_set(3)
    mirror = InMemoryMirror([flat_set(2), original], kind=PROMPT_SETS)
    mirror._current[3] = tampered(original)
    mirror._by_hash[original.config_hash] = tampered(original)
    before = integrity.failures()
    with caplog.at_level(logging.WARNING, logger="storybench_prompts.mirrors"):
        for _ in range(3):
            with pytest.raises(MirrorCorruptError, match="changed after it was written"):
                await mirror.get(3)
            with pytest.raises(MirrorCorruptError):
                await mirror.latest()  # a corrupt top is never skipped for an older one
            with pytest.raises(MirrorCorruptError, match=original.config_hash):
                await mirror.get_by_hash(original.config_hash)
    assert integrity.failures() == before + 9  # every refusal counted
    warnings = [r for r in caplog.records if "changed after it was written" in r.getMessage()]
    assert len(warnings) == 2  # one per copy (v3, the record), however often it is read
    assert (await mirror.get(2)).version == 2  # the others keep working


async def test_the_memory_mirror_refuses_other_content_under_a_hash():
    one, other = flat_set(1), flat_set(1, text_suffix=" (edited)")
    mirror = InMemoryMirror([one], kind=PROMPT_SETS)
    mirror._by_hash[one.config_hash] = other  # valid content, but not the one asked for
    with pytest.raises(MirrorCorruptError, match=other.config_hash):
        await mirror.get_by_hash(one.config_hash)


async def test_the_memory_mirror_rehashes_evaluation_sets_too():
    original = flat_evaluation_set(2)
    _ = original.config_hash
    copy = original.model_copy(update={"scoring_guidelines": "Anything goes."})
    mirror = InMemoryMirror([original], kind=EVALUATION_SETS)
    mirror._current[2] = copy
    with pytest.raises(MirrorCorruptError):
        await mirror.get(2)


async def test_the_file_mirror_counts_an_edited_copy(tmp_path):
    mirror = FileMirror(tmp_path, kind=PROMPT_SETS)
    content = flat_set(1)
    await mirror.save(content)
    record = mirror.record_path(content.config_hash)
    document = json.loads(record.read_text())
    document["prompt_set"]["sequences"]["Seq0"][0]["text"] = "Edited on disk."
    record.write_text(json.dumps(document))
    await mirror.save(flat_set(1, text_suffix=" v2"))  # no intact copy of it is left
    before = integrity.failures()
    with pytest.raises(MirrorCorruptError, match="changed after it was written") as caught:
        await mirror.get_by_hash(content.config_hash)
    assert caught.value.location == str(record)
    assert integrity.failures() == before + 1


async def test_a_tampered_mirror_copy_is_never_served_by_the_cache():
    original = flat_set(3)
    mirror = InMemoryMirror([original], kind=PROMPT_SETS)
    mirror._current[3] = tampered(original)
    origin = ScriptedOrigin({3: original})
    origin.error = PromptSetUnavailableError("down", causes=[])
    async with CachingRepository(origin, mirror, kind=PROMPT_SETS) as repo:
        with pytest.raises(PromptSetUnavailableError) as caught:
            await repo.get(3)
    assert any(isinstance(c, MirrorCorruptError) for c in caught.value.causes)
