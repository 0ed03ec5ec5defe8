"""A kind is only data: a small third kind, defined here, goes through the Directus source, the
cache and both file-based and in-memory mirrors with no code of the package knowing it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
import respx

from storybench_prompts import (
    CachePolicy,
    CachingRepository,
    ContentKind,
    DirectusServerError,
    DirectusSource,
    FileMirror,
    InMemoryMirror,
    InvalidPromptSetError,
    Problem,
    PromptSetNotFoundError,
    VersionedContent,
)
from storybench_prompts.content.kinds import NESTED_LIMIT, SchemaExpectation, deep_limits
from storybench_prompts.content.models import ReadOnlyMapping
from storybench_prompts.content.rules import check_key, check_text, checked, content_from_flat
from tests.fakes import FakeClock, ScriptedOrigin

pytestmark = pytest.mark.anyio


class NoteSet(VersionedContent):
    """Editor's notes: a name -> text mapping, versioned like the others."""

    notes: ReadOnlyMapping[str, str]

    def body(self) -> dict[str, Any]:
        return {"notes": dict(self.notes)}


def validate_notes(notes: NoteSet) -> list[Problem]:
    problems: list[Problem] = []
    if not notes.notes:
        problems.append(Problem("notes", "no note"))
    for key, text in notes.notes.items():
        key_problem = check_key(key)
        if key_problem:
            problems.append(Problem(f"notes[{key!r}]", key_problem))
        check_text(problems, f"notes[{key!r}]", text)
    return problems


def convert_notes(raw: Mapping[str, Any]) -> NoteSet:
    notes = NoteSet(
        version=raw["version_number"],
        directus_id=raw["id"],
        notes={row["note_id"]["title"]: row["note_id"]["text"] for row in raw["notes_in_version"]},
    )
    return checked(notes, validate_notes(notes), context=f"notes version {notes.version}")


def notes_from_storybench(data: Mapping[str, Any], *, context: str = "") -> NoteSet:
    return content_from_flat(NoteSet, data, validate_notes, context=context)


NOTES: ContentKind[NoteSet] = ContentKind(
    name="notes",
    noun="note set",
    model=NoteSet,
    collection="note_versions",
    nested_fields="*,notes_in_version.note_id.*",
    nested_deep=deep_limits(("notes_in_version",)),
    related_collections=("note_versions", "note_versions_notes", "notes"),
    mongo_collection="notes",
    file_prefix="note-set",
    file_key="note_set",
    convert=convert_notes,
    from_storybench=notes_from_storybench,
    validate=validate_notes,
    schema=SchemaExpectation(required={"note_versions": ("id", "version_number")}),
    render=lambda notes: [f"{k}: {v}" for k, v in notes.notes.items()],
)


def note_set(version: int, text: str = "Keep it short.") -> NoteSet:
    return NoteSet(version=version, directus_id=version + 900, notes={"style": text})


def notes_origin() -> ScriptedOrigin:
    return ScriptedOrigin({v: note_set(v) for v in (1, 2)}, kind=NOTES)


async def test_the_in_memory_mirror_holds_a_new_kind():
    mirror = InMemoryMirror(kind=NOTES)
    assert await mirror.save(note_set(1)) == "new"
    assert (await mirror.get(1)).notes["style"] == "Keep it short."
    assert (await mirror.get_by_hash(note_set(1).config_hash)).version == 1
    with pytest.raises(InvalidPromptSetError):
        await mirror.save(NoteSet(version=2, notes={}))


async def test_the_file_mirror_names_its_files_and_members_from_the_kind(tmp_path):
    mirror = FileMirror(tmp_path, kind=NOTES)
    await mirror.save(note_set(1))
    await mirror.save(note_set(1, "Longer now."))
    stored = json.loads((tmp_path / "note-set-v1.json").read_text())
    assert stored["kind"] == "notes"
    assert stored["note_set"]["notes"] == {"style": "Longer now."}
    assert (await mirror.latest()).notes["style"] == "Longer now."
    assert (await mirror.get_by_hash(note_set(1).config_hash)).notes["style"] == "Keep it short."
    assert [info.version for info in await mirror.versions()] == [1]


async def test_the_cache_serves_fails_over_and_refuses_by_the_kind(tmp_path):
    clock = FakeClock()
    origin = notes_origin()
    mirror = FileMirror(tmp_path, kind=NOTES)
    await mirror.save(note_set(2))
    policy = CachePolicy(fallback_after=0.05, pinned_ttl=10, max_stale=0, stale_if_error=0)
    async with CachingRepository(origin, mirror, policy=policy, clock=clock) as notes:
        assert notes.kind is NOTES
        assert (await notes.get(1)).provenance.source == "directus"
        assert (await notes.get(1)).provenance.source == "cache"
        origin.error = DirectusServerError("boom", status=500)
        served = await notes.get(2)
        assert served.provenance.source == "mirror"
        assert served.provenance.origin_error == "DirectusServerError"
        origin.error = None
        clock.advance(1.0)  # the next recovery probe is due
        with pytest.raises(PromptSetNotFoundError, match="no version 7"):
            await notes.get(7)
        assert notes.describe()["kind"] == "notes"


@respx.mock
async def test_the_directus_source_reads_a_kind_by_its_queries():
    route = respx.get("https://cms.example.org/items/note_versions").mock(
        return_value=httpx.Response(
            200,
            json={
                "data": [
                    {
                        "id": 901,
                        "version_number": 1,
                        "status": "published",
                        "notes_in_version": [{"note_id": {"title": "style", "text": "Terse."}}],
                    }
                ]
            },
        )
    )
    async with DirectusSource("https://cms.example.org", "token", kind=NOTES) as source:
        notes = await source.get(1)
    assert notes.notes == {"style": "Terse."}
    params = route.calls.last.request.url.params
    assert params["fields"] == "*,notes_in_version.note_id.*"
    assert json.loads(params["deep"]) == {"notes_in_version": {"_limit": NESTED_LIMIT}}
