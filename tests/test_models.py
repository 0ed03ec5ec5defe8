import hashlib
import json
from datetime import UTC, datetime

import pytest

from storybench_prompts import (
    InvalidPromptSetError,
    PromptSet,
    compute_config_hash,
    convert_version,
    parse_version,
    prompt_set_from_storybench,
)
from tests.factories import flat_set, raw_prompt, raw_sequence, raw_version


def storybench_hash(flat: dict) -> str:
    # Written from storybench's description, independently of our implementation.
    payload = {
        "sequences": flat["sequences"],
        "version": flat["version"],
        "directus_id": flat["directus_id"],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_config_hash_matches_storybench_recipe():
    prompt_set = convert_version(raw_version(7))
    flat = prompt_set.to_storybench()
    assert prompt_set.config_hash == storybench_hash(flat)
    assert len(prompt_set.config_hash) == 16
    assert prompt_set.content_hash.startswith(prompt_set.config_hash)
    assert compute_config_hash(flat["sequences"], 7, flat["directus_id"]) == prompt_set.config_hash


def test_config_hash_escapes_non_ascii_like_python_json():
    prompt_set = flat_set(text_suffix=" café ✨ 🐉")
    flat = prompt_set.to_storybench()
    assert prompt_set.config_hash == storybench_hash(flat)
    # ensure_ascii=False would hash different bytes: prove the difference is real.
    raw = json.dumps(
        {"sequences": flat["sequences"], "version": 1, "directus_id": flat["directus_id"]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert hashlib.sha256(raw.encode()).hexdigest()[:16] != prompt_set.config_hash


def test_hash_ignores_sequence_order_but_not_prompt_order():
    a = convert_version(
        raw_version(
            1,
            [
                raw_sequence("A", [raw_prompt("a1", order=1), raw_prompt("a2", order=2)]),
                raw_sequence("B", [raw_prompt("b1", order=1)]),
            ],
        )
    )
    b = convert_version(
        raw_version(
            1,
            [
                raw_sequence("B", [raw_prompt("b1", order=1)]),
                raw_sequence("A", [raw_prompt("a1", order=1), raw_prompt("a2", order=2)]),
            ],
        )
    )
    c = convert_version(
        raw_version(
            1,
            [
                raw_sequence("A", [raw_prompt("a1", order=2), raw_prompt("a2", order=1)]),
                raw_sequence("B", [raw_prompt("b1", order=1)]),
            ],
        )
    )
    assert list(a.sequences) == ["A", "B"]
    assert list(b.sequences) == ["B", "A"]
    assert a.config_hash == b.config_hash
    assert a.config_hash != c.config_hash


def test_prompts_sorted_by_order_missing_last_ties_by_name():
    ps = convert_version(
        raw_version(
            1,
            [
                raw_sequence(
                    "S",
                    [
                        raw_prompt("none-b"),
                        raw_prompt("three", order=3),
                        raw_prompt("none-a"),
                        raw_prompt("one", order=1),
                        raw_prompt("tie-z", order=2),
                        raw_prompt("tie-y", order=2),
                    ],
                )
            ],
        )
    )
    assert [p.name for p in ps.sequences["S"]] == [
        "one",
        "tie-y",
        "tie-z",
        "three",
        "none-a",
        "none-b",
    ]


def test_only_published_items_are_kept():
    ps = convert_version(
        raw_version(
            1,
            [
                raw_sequence(
                    "Kept",
                    [
                        raw_prompt("p1", order=1),
                        raw_prompt("draft", order=0, status="draft"),
                        raw_prompt("old", status="archived"),
                    ],
                ),
                raw_sequence("Draft", [raw_prompt("x", order=1)], status="draft"),
                raw_sequence("Archived", [raw_prompt("y", order=1)], status="archived"),
                {"id": 1, "prompt_sequences_id": None},  # not readable with this token
            ],
        )
    )
    assert list(ps.sequences) == ["Kept"]
    assert [p.name for p in ps.sequences["Kept"]] == ["p1"]


def test_unknown_fields_are_tolerated_and_known_fields_typed():
    raw = raw_version(
        1,
        [raw_sequence("S", [raw_prompt("p", order=1, editor_note="x", tags=["a"])], colour="red")],
        reviewer="someone",
    )
    parsed = parse_version(raw)
    assert parsed.version_number == 1
    assert convert_version(parsed).sequences["S"][0].name == "p"
    assert parsed.date_created == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def test_every_problem_is_listed_with_its_path():
    raw = raw_version(
        3,
        [
            raw_sequence(
                "A",
                [
                    raw_prompt("p", order=1),
                    raw_prompt("p", order=2),
                    raw_prompt("blank", "   ", order=3),
                ],
            ),
            raw_sequence("B", [raw_prompt("q", order=1)]),
            raw_sequence("A", [raw_prompt("r", order=1)]),
            raw_sequence("Empty", [raw_prompt("d", status="draft")]),
        ],
    )
    with pytest.raises(InvalidPromptSetError) as info:
        convert_version(raw)
    a = raw["sequences_in_set"][0]["prompt_sequences_id"]
    first_p, second_p, blank = (j["prompts_id"] for j in a["prompts_in_sequence"])
    second_a = raw["sequences_in_set"][2]["prompt_sequences_id"]
    seq = f'v3 > sequence "A" (id {a["id"]})'
    paths = {str(p.path): p.message for p in info.value.problems}
    # Each problem names the version, the sequence and the prompt by name and Directus id.
    assert paths[f'{seq} > prompt "p" (id {second_p["id"]}) > name'] == (
        f'duplicate name in this sequence (also prompt "p" (id {first_p["id"]}))'
    )
    assert paths[f'{seq} > prompt "blank" (id {blank["id"]}) > text'] == "empty"
    assert paths[f'v3 > sequence "A" (id {second_a["id"]}) > sequence_name'] == (
        f'duplicate name in this set (also sequence "A" (id {a["id"]}))'
    )
    # A sequence whose prompts are all drafts is left out, as storybench does: not a problem.
    assert not [path for path in paths if "Empty" in path]
    assert len(info.value.problems) == 3
    assert f'{seq} > prompt "blank" (id {blank["id"]}) > text: empty' in str(info.value)
    assert "version 3" in str(info.value)


def test_wrong_types_are_listed_with_paths_without_junction_hops():
    raw = raw_version(1, [raw_sequence("S", [raw_prompt("p", order="first")])])
    raw["sequences_in_set"][0]["prompt_sequences_id"]["prompts_in_sequence"].append(
        {"prompts_id": {"name": "n", "status": "published"}}
    )
    raw["version_number"] = "one"
    with pytest.raises(InvalidPromptSetError) as info:
        parse_version(raw)
    sequence = raw["sequences_in_set"][0]["prompt_sequences_id"]
    prompt = sequence["prompts_in_sequence"][0]["prompts_id"]
    paths = {p.path for p in info.value.problems}
    assert "version_number" in paths
    # Rows are named by their names and ids; a row without an id by its position.
    where = f'sequence "S" (id {sequence["id"]})'
    assert f'{where} > prompt "p" (id {prompt["id"]}) > order_in_sequence' in paths
    assert f'{where} > prompt "n" (position 2) > text' in paths


def test_published_version_without_published_sequence_is_invalid():
    raw = raw_version(1, [raw_sequence("S", [raw_prompt("p", order=1)], status="draft")])
    with pytest.raises(InvalidPromptSetError, match="no published sequence"):
        convert_version(raw)


@pytest.mark.parametrize("name", ["$where", "a.b", " "])
def test_sequence_names_that_cannot_be_mongo_keys_are_refused(name):
    with pytest.raises(InvalidPromptSetError):
        convert_version(raw_version(1, [raw_sequence(name, [raw_prompt("p", order=1)])]))


def test_non_object_payload_is_a_typed_error():
    with pytest.raises(InvalidPromptSetError, match="expected an object"):
        parse_version(["not", "an", "object"])


def test_storybench_flat_format_round_trip():
    ps = flat_set(3, text_suffix=" ünïcode")
    again = prompt_set_from_storybench(ps.to_storybench() | {"version_name": ps.version_name})
    assert again == ps
    assert again.config_hash == ps.config_hash


def test_from_storybench_refuses_empty_text():
    data = flat_set().to_storybench()
    data["sequences"]["Seq0"][1]["text"] = ""
    expected = r'v1 > sequence "Seq0" > prompt "P0\.1" \(position 2\) > text: empty'
    with pytest.raises(InvalidPromptSetError, match=expected):
        prompt_set_from_storybench(data)


def test_prompt_set_is_immutable():
    ps = flat_set()
    with pytest.raises(Exception, match="frozen"):
        ps.version = 2  # type: ignore[misc]
    assert isinstance(ps, PromptSet)
