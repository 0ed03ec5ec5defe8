"""Which versions a Directus change event touches, for every collection a kind reads (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from storybench_prompts.content.kinds import EVALUATION_SETS, PROMPT_SETS
from storybench_prompts.content.tracking import touches, versions_named


def prompt_version(number: int, sequences: list[tuple[int, int, list[tuple[int, int]]]]):
    """A raw prompt-set version: sequences as (junction id, sequence id, [(junction id,
    prompt id)])."""
    return {
        "id": 100 + number,
        "version_number": number,
        "status": "published",
        "sequences_in_set": [
            {
                "id": link,
                "prompt_sequences_id": {
                    "id": sequence,
                    "sequence_name": f"S{sequence}",
                    "prompts_in_sequence": [
                        {"id": row, "prompts_id": {"id": prompt, "name": f"P{prompt}"}}
                        for row, prompt in prompts
                    ],
                },
            }
            for link, sequence, prompts in sequences
        ],
    }


# Version 1 has sequence 10 (its own prompts 1000, 1001) and the shared sequence 99; version
# 2 has sequence 20 and the shared one.
SHARED = (9, 99, [(990, 9000)])
V1 = PROMPT_SETS.directus_keys(prompt_version(1, [(1, 10, [(500, 1000), (501, 1001)]), SHARED]))
V2 = PROMPT_SETS.directus_keys(prompt_version(2, [(2, 20, [(600, 2000)]), (3, *SHARED[1:])]))
PARENTS = PROMPT_SETS.parents()


def touched(collection: str, event: str, rows: list[dict[str, Any]]) -> set[int]:
    return {n for n, refs in ((1, V1), (2, V2)) if touches(refs, collection, event, rows, PARENTS)}


def test_the_keys_of_every_row_a_version_was_read_from():
    assert {
        "prompt_set_versions": {101},
        "prompt_set_versions_prompt_sequences": {1, 9},
        "prompt_sequences": {10, 99},
        "prompt_sequences_prompts": {500, 501, 990},
        "prompts": {1000, 1001, 9000},
    } == V1


@pytest.mark.parametrize(
    ("collection", "event", "rows", "expected"),
    [
        ("prompts", "update", [{"id": 1000}], {1}),  # a prompt only version 1 uses
        ("prompts", "update", [{"id": "1000"}], {1}),  # keys arrive as strings too
        ("prompts", "update", [{"id": 9000}], {1, 2}),  # a prompt of the shared sequence
        ("prompts", "delete", [{"id": "2000"}], {2}),  # a delete carries only keys
        ("prompts", "create", [{"id": 7777}], set()),  # linked nowhere yet
        ("prompt_sequences", "update", [{"id": 20}], {2}),
        ("prompt_sequences", "update", [{"id": 99}], {1, 2}),
        # a junction row: its own key, or the parent it names for a new or moved link
        ("prompt_sequences_prompts", "update", [{"id": 501}], {1}),
        (
            "prompt_sequences_prompts",
            "create",
            [{"id": 777, "prompt_sequences_id": 20, "prompts_id": 1000}],
            {2},
        ),
        (
            "prompt_sequences_prompts",
            "create",
            [{"id": 778, "prompt_sequences_id": 55, "prompts_id": 1000}],
            set(),  # a link under a sequence no cached version holds
        ),
        ("prompt_sequences_prompts", "delete", [{"id": "990"}], {1, 2}),
        (
            "prompt_set_versions_prompt_sequences",
            "create",
            [{"id": 4, "prompt_set_versions_id": 101, "prompt_sequences_id": 20}],
            {1},
        ),
        ("prompt_set_versions_prompt_sequences", "delete", [{"id": "2"}], {2}),
        ("prompt_set_versions", "update", [{"id": 102, "version_number": 2}], {2}),
        ("prompt_set_versions", "delete", [{"id": "101"}], {1}),
    ],
)
def test_an_event_touches_exactly_the_versions_holding_its_rows(collection, event, rows, expected):
    assert touched(collection, event, rows) == expected


def test_content_not_read_from_directus_is_touched_by_everything():
    assert touches(None, "prompts", "update", [{"id": 1}], PARENTS)


def test_the_version_rows_name_their_numbers_and_whether_latest_may_move():
    assert versions_named("prompt_set_versions", "update", [{"id": 5, "version_number": 3}]) == (
        {3},
        True,
    )
    # a draft created moves nothing that is served; a published one may become "latest"
    assert versions_named(
        "prompt_set_versions", "create", [{"id": 6, "version_number": 4, "status": "draft"}]
    ) == ({4}, False)
    assert versions_named(
        "prompt_set_versions", "create", [{"id": 6, "version_number": 4, "status": "published"}]
    ) == ({4}, True)
    assert versions_named("prompt_set_versions", "delete", [{"id": "6"}]) == (set(), True)


def evaluation_version() -> dict[str, Any]:
    return {
        "id": 301,
        "version_number": 1,
        "status": "published",
        "evaluation_criteria_in_version": [
            {"id": 40, "evaluation_criteria_id": {"id": 4000, "criterion_name": "c"}}
        ],
        "scoring_in_version": [{"id": 50, "scoring_id": {"id": 5000, "guidelines": "g"}}],
    }


@pytest.mark.parametrize(
    ("collection", "event", "rows", "expected"),
    [
        ("evaluation_criteria", "update", [{"id": 4000}], True),
        ("evaluation_criteria", "update", [{"id": 4001}], False),
        ("scoring", "update", [{"id": "5000"}], True),
        ("evaluation_versions_evaluation_criteria", "delete", [{"id": "40"}], True),
        (
            "evaluation_versions_scoring",
            "create",
            [{"id": 51, "evaluation_versions_id": 301, "scoring_id": 5001}],
            True,
        ),
        (
            "evaluation_versions_scoring",
            "create",
            [{"id": 52, "evaluation_versions_id": 302, "scoring_id": 5001}],
            False,
        ),
        ("evaluation_versions", "update", [{"id": 301}], True),
    ],
)
def test_the_evaluation_collections_map_to_their_versions(collection, event, rows, expected):
    refs = EVALUATION_SETS.directus_keys(evaluation_version())
    assert touches(refs, collection, event, rows, EVALUATION_SETS.parents()) is expected


def test_every_collection_a_kind_reads_is_subscribed_with_the_fields_that_map_it():
    for kind in (PROMPT_SETS, EVALUATION_SETS):
        fields = kind.subscription_fields()
        assert set(fields) == set(kind.related_collections)
        for junction, (parent_field, _parent) in kind.parents().items():
            assert parent_field in fields[junction]
        assert {"version_number", "status"} <= set(fields[kind.collection])
