"""content.diff and ops.diff: every kind of change between two sets, its JSON shape and order, and the report."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from storybench_prompts import (
    EVALUATION_SETS,
    PROMPT_SETS,
    Criterion,
    EvaluationSet,
    Prompt,
    PromptSet,
    VersionedContent,
)
from storybench_prompts.ops.diff import (
    SetDiff,
    diff_evaluation_sets,
    diff_prompt_sets,
    diff_sets,
    render_diff,
)
from tests.factories import flat_evaluation_set, flat_set

ANSI = re.compile(r"\x1b\[")


def prompt_set(version: int, sequences: dict[str, list[tuple[str, str]]]) -> PromptSet:
    return PromptSet(
        version=version,
        directus_id=version + 100,
        sequences={
            name: tuple(Prompt(name=p, text=t) for p, t in prompts)
            for name, prompts in sequences.items()
        },
    )


def edited(base: PromptSet, version: int, **sequences: list[tuple[str, str]] | None) -> PromptSet:
    """``base`` at another version with some sequences replaced (None removes one)."""
    content = {name: [(p.name, p.text) for p in ps] for name, ps in base.sequences.items()}
    for name, prompts in sequences.items():
        if prompts is None:
            del content[name]
        else:
            content[name] = prompts
    return prompt_set(version, content)


def criterion(n: int, **changes: Any) -> Criterion:
    fields: dict[str, Any] = {
        "name": f"Criterion {n}",
        "description": f"How well the text does {n}.",
        "scale": (1, 5),
        "criteria": f"Score {n} from 1 to 5.",
    }
    return Criterion(**{**fields, **changes})


def evaluation_set(
    version: int, criteria: dict[str, Criterion], guidelines: str = "Be fair."
) -> EvaluationSet:
    return EvaluationSet(
        version=version, directus_id=version + 500, criteria=criteria, scoring_guidelines=guidelines
    )


def changes(diff: SetDiff) -> list[tuple[str, str | None, str]]:
    return [(c["sequence"], c["prompt"], c["change"]) for c in diff.as_json()["changes"]]


# -- identical --------------------------------------------------------------------------------


def test_identical_prompt_sets_have_no_changes() -> None:
    diff = diff_sets(flat_set(1), flat_set(1))
    assert diff.identical is True
    assert diff.changes == ()
    assert diff.as_json() == {"identical": True, "changes": []}


def test_same_content_under_another_version_is_identical_but_keeps_both_hashes() -> None:
    a, b = flat_set(1), flat_set(2)
    diff = diff_sets(a, b)
    assert diff.identical
    assert (diff.a_version, diff.a_config_hash) == (1, a.config_hash)
    assert (diff.b_version, diff.b_config_hash) == (2, b.config_hash)
    assert diff.a_config_hash != diff.b_config_hash


def test_identical_evaluation_sets_have_no_changes() -> None:
    diff = diff_sets(flat_evaluation_set(1), flat_evaluation_set(1))
    assert diff.as_json() == {"identical": True, "changes": []}


# -- prompt sets ------------------------------------------------------------------------------


def test_sequence_added_and_removed() -> None:
    a = flat_set(1, sequences=2)
    b = edited(a, 2, Seq0=None, New=[("N1", "new text")])
    diff = diff_prompt_sets(a, b)
    assert not diff.identical
    assert diff.as_json()["changes"] == [
        {"sequence": "New", "prompt": None, "change": "added"},
        {"sequence": "Seq0", "prompt": None, "change": "removed"},
    ]


def test_a_removed_and_an_added_sequence_with_the_same_prompts_are_one_rename() -> None:
    a = flat_set(1, sequences=3)
    b = prompt_set(
        2,
        {
            "Seq0": [(p.name, p.text) for p in a.sequences["Seq0"]],
            "Renamed": [(p.name, p.text) for p in a.sequences["Seq1"]],
            "Seq2": [(p.name, p.text) for p in a.sequences["Seq2"]],
        },
    )
    assert diff_sets(a, b).as_json()["changes"] == [
        {"sequence": "Renamed", "prompt": None, "change": "changed", "renamed_from": "Seq1"}
    ]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param([("P1.0", "Prompt 1.0"), ("P1.1", "Prompt 1.1")], id="one prompt fewer"),
        pytest.param(
            [("P1.0", "Prompt 1.0"), ("P1.1", "Prompt 1.1"), ("P1.2", "other")], id="other text"
        ),
        pytest.param(
            [("P1.0", "Prompt 1.0"), ("P1.1", "Prompt 1.1"), ("X", "Prompt 1.2")], id="other name"
        ),
        pytest.param(
            [("P1.1", "Prompt 1.1"), ("P1.0", "Prompt 1.0"), ("P1.2", "Prompt 1.2")],
            id="other order",
        ),
    ],
)
def test_a_sequence_with_other_prompts_is_no_rename(other: list[tuple[str, str]]) -> None:
    a = flat_set(1, sequences=2)
    b = edited(a, 2, Seq1=None, Renamed=other)
    assert changes(diff_sets(a, b)) == [
        ("Renamed", None, "added"),
        ("Seq1", None, "removed"),
    ]


def test_each_removed_sequence_is_renamed_at_most_once() -> None:
    same = [("P", "text")]
    a = prompt_set(1, {"Old1": same, "Old2": same})
    b = prompt_set(2, {"New1": same, "New2": same, "New3": same})
    assert diff_sets(a, b).as_json()["changes"] == [
        {"sequence": "New1", "prompt": None, "change": "changed", "renamed_from": "Old1"},
        {"sequence": "New2", "prompt": None, "change": "changed", "renamed_from": "Old2"},
        {"sequence": "New3", "prompt": None, "change": "added"},
    ]


def test_prompt_added_and_removed() -> None:
    a = prompt_set(1, {"S": [("A", "a"), ("B", "b"), ("C", "c")]})
    b = prompt_set(2, {"S": [("A", "a"), ("N", "n"), ("C", "c")]})
    assert diff_sets(a, b).as_json()["changes"] == [
        {"sequence": "S", "prompt": "N", "change": "added", "to_position": 1},
        {"sequence": "S", "prompt": "B", "change": "removed", "from_position": 1},
    ]


def test_prompt_text_changed_carries_a_unified_diff() -> None:
    a = prompt_set(1, {"S": [("A", "first line\nsecond line\nthird line")]})
    b = prompt_set(2, {"S": [("A", "first line\nsecond LINE\nthird line")]})
    [change] = diff_sets(a, b).as_json()["changes"]
    assert change == {
        "sequence": "S",
        "prompt": "A",
        "change": "changed",
        "diff": [
            "--- v1/S/A",
            "+++ v2/S/A",
            "@@ -1,3 +1,3 @@",
            " first line",
            "-second line",
            "+second LINE",
            " third line",
        ],
    }


def test_a_change_of_the_final_newline_alone_is_shown() -> None:
    a = prompt_set(1, {"S": [("A", "text")]})
    b = prompt_set(2, {"S": [("A", "text\n")]})
    [change] = diff_sets(a, b).changes
    assert change.diff == (
        "--- v1/S/A",
        "+++ v2/S/A",
        "@@ -1 +1 @@",
        "-text",
        "\\ No newline at end of file",
        "+text",
    )


def test_swapped_prompts_report_one_move() -> None:
    a = prompt_set(1, {"S": [("A", "a"), ("B", "b")]})
    b = prompt_set(2, {"S": [("B", "b"), ("A", "a")]})
    assert diff_sets(a, b).as_json()["changes"] == [
        {"sequence": "S", "prompt": "B", "change": "moved", "from_position": 1, "to_position": 0}
    ]


def test_a_prompt_moved_to_the_front_is_the_only_move() -> None:
    a = prompt_set(1, {"S": [("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")]})
    b = prompt_set(2, {"S": [("D", "d"), ("A", "a"), ("B", "b"), ("C", "c")]})
    assert diff_sets(a, b).as_json()["changes"] == [
        {"sequence": "S", "prompt": "D", "change": "moved", "from_position": 3, "to_position": 0}
    ]


def test_an_insertion_or_removal_does_not_move_the_prompts_after_it() -> None:
    a = prompt_set(1, {"S": [("A", "a"), ("B", "b"), ("C", "c")]})
    b = prompt_set(2, {"S": [("N", "n"), ("A", "a"), ("C", "c")]})
    assert changes(diff_sets(a, b)) == [("S", "N", "added"), ("S", "B", "removed")]


def test_a_moved_and_changed_prompt_reports_both() -> None:
    a = prompt_set(1, {"S": [("A", "a"), ("B", "b")]})
    b = prompt_set(2, {"S": [("B", "b2"), ("A", "a")]})
    assert changes(diff_sets(a, b)) == [("S", "B", "changed"), ("S", "B", "moved")]


def test_changes_follow_b_order_then_removals() -> None:
    a = prompt_set(
        1,
        {
            "Gone": [("G", "g")],
            "S1": [("A", "a"), ("X", "x"), ("B", "b")],
            "S2": [("C", "c")],
        },
    )
    b = prompt_set(
        2,
        {
            "S2": [("C", "c2"), ("D", "d")],
            "Fresh": [("F", "f")],
            "S1": [("B", "b"), ("A", "a")],
        },
    )
    expected = [
        ("S2", "C", "changed"),
        ("S2", "D", "added"),
        ("Fresh", None, "added"),
        ("S1", "B", "moved"),
        ("S1", "X", "removed"),
        ("Gone", None, "removed"),
    ]
    assert changes(diff_sets(a, b)) == expected
    # Deterministic: the same inputs always give the same changes, in the same order.
    assert all(diff_sets(a, b) == diff_sets(a, b) for _ in range(5))


def test_sequence_order_alone_is_no_change() -> None:
    a = flat_set(1, sequences=3)
    b = prompt_set(
        1,
        {name: [(p.name, p.text) for p in a.sequences[name]] for name in ("Seq2", "Seq0", "Seq1")},
    )
    assert b.config_hash == a.config_hash  # the hash ignores sequence order too
    assert diff_sets(a, b).identical


def test_diff_from_b_to_a_mirrors_the_changes() -> None:
    a = prompt_set(1, {"S": [("A", "a"), ("B", "b")], "T": [("C", "c")]})
    b = prompt_set(2, {"S": [("A", "a")], "U": [("D", "d")]})
    assert changes(diff_sets(a, b)) == [
        ("S", "B", "removed"),
        ("U", None, "added"),
        ("T", None, "removed"),
    ]
    assert changes(diff_sets(b, a)) == [
        ("S", "B", "added"),
        ("T", None, "added"),
        ("U", None, "removed"),
    ]


# -- evaluation sets --------------------------------------------------------------------------


def test_criteria_added_and_removed_by_key() -> None:
    a = evaluation_set(1, {"one": criterion(1), "two": criterion(2)})
    b = evaluation_set(2, {"three": criterion(3), "one": criterion(1)})
    assert diff_evaluation_sets(a, b).as_json()["changes"] == [
        {"sequence": "three", "prompt": None, "change": "added"},
        {"sequence": "two", "prompt": None, "change": "removed"},
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "Another description."),
        ("scale", (1, 10)),
        ("criteria", "Score it differently."),
    ],
)
def test_a_criterion_with_one_field_changed_names_that_field(field: str, value: Any) -> None:
    a = evaluation_set(1, {"one": criterion(1)})
    b = evaluation_set(2, {"one": criterion(1, **{field: value})})
    [change] = diff_sets(a, b).as_json()["changes"]
    assert (change["sequence"], change["prompt"], change["change"]) == ("one", None, "changed")
    assert change["fields"] == [field]
    if field == "scale":
        assert (change["from_scale"], change["to_scale"]) == ([1, 5], [1, 10])
        assert "diff" not in change
    else:
        assert f"--- v1/one/{field}" in change["diff"]
        assert f"+{value}" in change["diff"]


def test_a_criterion_with_several_fields_changed_names_them_all() -> None:
    a = evaluation_set(1, {"one": criterion(1)})
    b = evaluation_set(2, {"one": criterion(1, description="New.", scale=(1, 3), criteria="New.")})
    [change] = diff_sets(a, b).changes
    assert change.fields == ("description", "scale", "criteria")
    assert "-How well the text does 1." in change.diff
    assert "-Score 1 from 1 to 5." in change.diff


def test_a_changed_scoring_guideline_is_a_change_with_a_diff() -> None:
    a = evaluation_set(1, {"one": criterion(1), "gone": criterion(2)}, "Be fair.\nBe brief.")
    b = evaluation_set(2, {"one": criterion(1), "new": criterion(3)}, "Be fair.\nBe kind.")
    diff = diff_sets(a, b).as_json()
    assert [(c["sequence"], c["change"]) for c in diff["changes"]] == [
        ("new", "added"),
        ("scoring_guidelines", "changed"),
        ("gone", "removed"),
    ]
    guidelines = diff["changes"][1]
    assert guidelines["prompt"] is None
    assert guidelines["diff"] == [
        "--- v1/scoring_guidelines",
        "+++ v2/scoring_guidelines",
        "@@ -1,2 +1,2 @@",
        " Be fair.",
        "-Be brief.",
        "+Be kind.",
    ]


def test_criterion_order_alone_is_no_change() -> None:
    a = evaluation_set(1, {"one": criterion(1), "two": criterion(2)})
    b = evaluation_set(1, {"two": criterion(2), "one": criterion(1)})
    assert diff_sets(a, b).identical


# -- the JSON shape ---------------------------------------------------------------------------


def test_json_has_exactly_identical_and_changes_and_survives_json() -> None:
    a = flat_evaluation_set(1)
    b = flat_evaluation_set(2, criteria=4, text_suffix=" more")
    data = diff_sets(a, b).as_json()
    assert set(data) == {"identical", "changes"}
    assert data["identical"] is False
    assert json.loads(json.dumps(data)) == data
    for change in data["changes"]:
        assert {"sequence", "prompt", "change"} <= set(change)
        assert change["prompt"] is None
        assert change["change"] in {"added", "removed", "changed", "moved"}
    p = diff_sets(flat_set(1), flat_set(2, text_suffix="!")).as_json()
    assert {c["prompt"] for c in p["changes"]} == {f"P{s}.{i}" for s in range(2) for i in range(3)}


# -- dispatch ---------------------------------------------------------------------------------


def test_diff_sets_picks_the_diff_of_the_kind() -> None:
    assert diff_sets(flat_set(1), flat_set(1)).kind == "prompt set"
    assert diff_sets(flat_evaluation_set(1), flat_evaluation_set(1)).kind == "evaluation set"


def test_sets_of_different_kinds_raise_type_error() -> None:
    with pytest.raises(TypeError, match="PromptSet against a EvaluationSet"):
        diff_sets(flat_set(1), flat_evaluation_set(1))
    with pytest.raises(TypeError, match="EvaluationSet against a PromptSet"):
        diff_sets(flat_evaluation_set(1), flat_set(1))


def test_a_subclass_of_a_model_is_diffed_as_its_kind() -> None:
    class Special(PromptSet):
        pass

    special = Special(version=1, sequences={"S": (Prompt(name="A", text="a"),)})
    assert diff_sets(special, special).kind == "prompt set"


def test_content_of_no_kind_raises_type_error() -> None:
    class Unknown(VersionedContent):
        def body(self) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="no content kind for Unknown"):
        diff_sets(Unknown(version=1), Unknown(version=1))


def test_each_kind_names_its_diff_and_diff_sets_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import storybench_prompts.ops.diff as front

    assert PROMPT_SETS.diff is diff_prompt_sets
    assert EVALUATION_SETS.diff is diff_evaluation_sets
    seen: list[str] = []

    def spy(a: PromptSet, b: PromptSet) -> SetDiff:
        seen.append("spy")
        return diff_prompt_sets(a, b)

    monkeypatch.setattr(front, "kind_of", lambda _c: dataclasses.replace(PROMPT_SETS, diff=spy))
    diff_sets(flat_set(1), flat_set(2))
    assert seen == ["spy"]
    monkeypatch.setattr(front, "kind_of", lambda _c: dataclasses.replace(PROMPT_SETS, diff=None))
    with pytest.raises(TypeError, match="no diff for prompt sets"):
        diff_sets(flat_set(1), flat_set(1))


def test_diff_sets_is_public() -> None:
    import storybench_prompts

    assert storybench_prompts.diff_sets is diff_sets
    assert storybench_prompts.SetDiff is SetDiff


# -- the report -------------------------------------------------------------------------------


@pytest.fixture
def colour_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def sample_diff() -> SetDiff:
    a = prompt_set(1, {"S": [("A", "old text"), ("B", "b")], "Gone": [("G", "g")]})
    b = prompt_set(2, {"S": [("B", "b"), ("A", "new text"), ("N", "n")]})
    return diff_sets(a, b)


def test_plain_report_has_header_one_line_per_change_and_indented_diffs(colour_env: None) -> None:
    diff = sample_diff()
    report = render_diff(diff, color=False)
    assert not ANSI.search(report)
    assert report.splitlines() == [
        f"prompt set v1 ({diff.a_config_hash}) -> v2 ({diff.b_config_hash})",
        "4 changes",
        "  > S/B moved from index 1 to 0",
        "  ~ S/A text changed",
        "      --- v1/S/A",
        "      +++ v2/S/A",
        "      @@ -1 +1 @@",
        "      -old text",
        "      +new text",
        "  + S/N added at index 2",
        "  - sequence Gone removed",
    ]


def test_coloured_report_is_the_same_text_with_green_additions_and_red_removals(
    colour_env: None,
) -> None:
    diff = sample_diff()
    coloured = render_diff(diff, color=True)
    assert ANSI.search(coloured)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render_diff(diff, color=False)
    lines = coloured.splitlines()
    assert next(line for line in lines if "+new text" in line).startswith("\x1b[32m")  # green
    assert next(line for line in lines if "-old text" in line).startswith("\x1b[31m")  # red


def test_report_of_identical_sets(colour_env: None) -> None:
    report = render_diff(diff_sets(flat_set(1), flat_set(1)), color=False)
    assert report.splitlines()[1] == "identical: no changes"


def test_report_of_evaluation_sets(colour_env: None) -> None:
    a = evaluation_set(1, {"one": criterion(1), "two": criterion(2)}, "Be fair.")
    b = evaluation_set(2, {"one": criterion(1, scale=(1, 7)), "three": criterion(3)}, "Be kind.")
    lines = render_diff(diff_sets(a, b), color=False).splitlines()
    assert lines[0].startswith("evaluation set v1 (")
    assert "  ~ criterion one changed: scale (scale 1-5 -> 1-7)" in lines
    assert "  + criterion three added" in lines
    assert "  ~ scoring guidelines changed" in lines
    assert "      +Be kind." in lines
    assert "  - criterion two removed" in lines


def test_long_lines_are_not_wrapped(colour_env: None) -> None:
    long = "word " * 100
    a = prompt_set(1, {"S": [("A", long)]})
    b = prompt_set(2, {"S": [("A", long + "more")]})
    diff = diff_sets(a, b)
    plain = render_diff(diff, color=False)
    assert re.sub(r"\x1b\[[0-9;]*m", "", render_diff(diff, color=True)) == plain


def test_control_characters_in_content_are_escaped_in_the_report(colour_env: None) -> None:
    a = prompt_set(1, {"S": [("A", "plain")]})
    b = prompt_set(2, {"S": [("A", "red \x1b[31m alert\r"), ("B\u202e", "b")]})
    report = render_diff(diff_sets(a, b), color=False)
    assert "\x1b" not in report
    assert "\r" not in report
    assert "\u202e" not in report
    assert "+red \\x1b[31m alert\\r" in report
    assert "S/B\\u202e added" in report
    # The data itself is untouched.
    assert "+red \x1b[31m alert\r" in diff_sets(a, b).changes[0].diff
