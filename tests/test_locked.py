"""Getting back exactly what a lock names: Directus's current content, else by hash from the
cache or a mirror, every copy re-hashed; never other content."""

from __future__ import annotations

import pytest

from storybench_prompts import (
    PROMPT_SETS,
    CachingRepository,
    InMemoryMirror,
    LockedContentNotFoundError,
    LockedSet,
    MirrorCorruptError,
    Prompt,
)
from storybench_prompts.ops.locked import keep_in_mirror, resolve_locked
from tests.factories import flat_set
from tests.fakes import ScriptedOrigin

pytestmark = pytest.mark.anyio


def edited(version: int):
    return flat_set(version, text_suffix=" (edited)")


async def test_the_current_version_when_it_still_holds_the_content():
    origin = ScriptedOrigin()
    async with CachingRepository(origin, InMemoryMirror(kind=PROMPT_SETS)) as repo:
        found = await resolve_locked(repo, LockedSet(2, flat_set(2).config_hash), kind=PROMPT_SETS)
    assert found.content.config_hash == flat_set(2).config_hash
    assert found.found_in == "directus"


async def test_an_edited_version_is_found_by_hash_in_the_mirror():
    mirror = InMemoryMirror([flat_set(2)], kind=PROMPT_SETS)
    origin = ScriptedOrigin({1: flat_set(1), 2: edited(2)})
    async with CachingRepository(origin, mirror) as repo:
        found = await resolve_locked(repo, LockedSet(2, flat_set(2).config_hash), kind=PROMPT_SETS)
    assert found.content.config_hash == flat_set(2).config_hash
    assert found.found_in == "mirror (memory)"
    assert any("now holds" in str(m) for m in found.misses)


async def test_a_further_mirror_is_the_last_place_looked_at():
    origin = ScriptedOrigin({2: edited(2)})
    elsewhere = InMemoryMirror([flat_set(2)], kind=PROMPT_SETS)
    found = await resolve_locked(
        origin, LockedSet(2, flat_set(2).config_hash), kind=PROMPT_SETS, mirrors=[elsewhere]
    )
    assert found.found_in == "mirror (memory)"


async def test_nowhere_raises_naming_the_hash_and_never_serves_other_content():
    origin = ScriptedOrigin({2: edited(2)})
    async with CachingRepository(origin, InMemoryMirror(kind=PROMPT_SETS)) as repo:
        locked = LockedSet(2, flat_set(2).config_hash)
        with pytest.raises(LockedContentNotFoundError) as caught:
            await resolve_locked(repo, locked, kind=PROMPT_SETS)
    error = caught.value
    assert locked.config_hash in str(error)
    assert (error.kind, error.version, error.config_hash) == ("prompts", 2, locked.config_hash)
    assert "no other content is served" in str(error)


async def test_a_tampered_copy_is_refused_and_the_next_place_tried():
    original = flat_set(2)
    _ = original.config_hash
    sequences = dict(original.sequences)
    sequences["Seq0"] = (Prompt(name="P0.0", text="tampered"), *sequences["Seq0"][1:])
    tampered = original.model_copy(update={"sequences": sequences})  # keeps the old hash
    first = InMemoryMirror([original], kind=PROMPT_SETS)
    first._by_hash[original.config_hash] = tampered
    second = InMemoryMirror([original], kind=PROMPT_SETS)
    origin = ScriptedOrigin({2: edited(2)})
    found = await resolve_locked(
        origin, LockedSet(2, original.config_hash), kind=PROMPT_SETS, mirrors=[first, second]
    )
    assert found.content.sequences == original.sequences
    assert any(isinstance(m, MirrorCorruptError) for m in found.misses)
    with pytest.raises(LockedContentNotFoundError) as caught:
        await resolve_locked(
            origin, LockedSet(2, original.config_hash), kind=PROMPT_SETS, mirrors=[first]
        )
    assert any(isinstance(c, MirrorCorruptError) for c in caught.value.causes)


async def test_a_copy_under_another_version_number_is_not_the_locked_one():
    origin = ScriptedOrigin({3: flat_set(3)})
    mirror = InMemoryMirror([flat_set(2)], kind=PROMPT_SETS)
    with pytest.raises(LockedContentNotFoundError):
        await resolve_locked(
            origin, LockedSet(3, flat_set(2).config_hash), kind=PROMPT_SETS, mirrors=[mirror]
        )


async def test_keep_in_mirror_saves_and_reads_back():
    mirror = InMemoryMirror(kind=PROMPT_SETS)
    copy = await keep_in_mirror(mirror, flat_set(3))
    assert copy.config_hash == flat_set(3).config_hash
    assert (await mirror.get_by_hash(flat_set(3).config_hash)).version == 3
