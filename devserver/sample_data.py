"""Sample content shaped like storybench's: prompt sets (five sequences of three prompts per
version) and evaluation sets (criteria with long instructions, scoring guidelines)."""

from __future__ import annotations

from typing import Any

from devserver.directus import DirectusServer

SEQUENCES: dict[str, list[tuple[str, str]]] = {
    "FilmNarrative": [
        ("Initial Concept", "Pitch an original film built around a single unusual object."),
        ("Scene Development", "Write the opening scene of that film, with directions."),
        ("Visual Realization", "Describe three key frames as a storyboard artist would."),
    ],
    "LiteraryFiction": [
        ("Character Sketch", "Introduce a character through one ordinary morning."),
        ("Turning Point", "Write the moment that morning stops being ordinary."),
        ("Aftermath", "Close the story a year later, in a different voice."),
    ],
    "CommercialConcept": [
        ("Product Idea", "Invent a product nobody asked for but everybody needs."),
        ("Campaign", "Write the thirty-second advert that launches it."),
        ("Backlash", "Write the review that sinks it, then the reply that saves it."),
    ],
    "RegionalThriller": [
        ("Setting", "Describe a small coastal town with a secret, through its smells."),
        ("Inciting Incident", "Something washes ashore. Write the first hour."),
        ("Resolution", "Reveal the secret without naming it."),
    ],
    "CrossGenre": [
        ("Fusion Pitch", "Combine a western and a cookery show into one premise."),
        ("Key Scene", "Write its most tense scene, with recipes."),
        ("Finale", "End it in a way both genres would accept."),
    ],
}


def version_payload(
    version_number: int,
    *,
    status: str = "published",
    version_name: str | None = None,
    sequences: dict[str, list[tuple[str, str]]] | None = None,
    variant: str = "",
    extra_sequences: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A nested create payload for ``POST /items/prompt_set_versions``.

    Prompts are attached in reverse order of ``order_in_sequence`` on purpose, so a client
    that forgets to sort by it shows the wrong order.
    """
    sequences = sequences or SEQUENCES
    seq_items: list[dict[str, Any]] = []
    for seq_name, prompts in sequences.items():
        prompt_items = [
            {
                "prompts_id": {
                    "name": name,
                    "text": f"{text}{variant}",
                    "order_in_sequence": index + 1,
                    "status": "published",
                    "guidance_notes": "Keep it under 800 words.",
                    "tags": ["sample"],
                }
            }
            for index, (name, text) in enumerate(prompts)
        ]
        prompt_items.reverse()
        seq_items.append(
            {
                "prompt_sequences_id": {
                    "sequence_name": seq_name,
                    "sequence_description": f"The {seq_name} sequence",
                    "status": "published",
                    "prompts_in_sequence": prompt_items,
                }
            }
        )
    seq_items.extend(extra_sequences or [])
    return {
        "version_number": version_number,
        "version_name": version_name or f"Sample set v{version_number}",
        "status": status,
        "description": "Sample prompts for the local Directus",
        "sequences_in_set": seq_items,
    }


# Fields of the prompt collections that a minimal schema leaves out.
OPTIONAL_PROMPT_FIELDS = frozenset(
    {
        "version_name",
        "description",
        "sequence_description",
        "guidance_notes",
        "expected_outcome_summary",
        "tags",
    }
)


def without_optional_fields(payload: Any) -> Any:
    """The payload with every optional prompt-set field left out, at every depth."""
    if isinstance(payload, dict):
        return {
            k: without_optional_fields(v)
            for k, v in payload.items()
            if k not in OPTIONAL_PROMPT_FIELDS
        }
    if isinstance(payload, list):
        return [without_optional_fields(v) for v in payload]
    return payload


def seed_sample_sets(server: DirectusServer, versions: int = 3, *, minimal: bool = False) -> None:
    """Published versions 1..N, plus a draft N+1 and an archived N+2 that must stay hidden.

    Version 2 also holds a draft sequence and a draft prompt, which must be left out.
    ``minimal``: for a server built with the minimal schema (no optional field).
    """

    def create(payload: dict[str, Any]) -> None:
        server.create_version(without_optional_fields(payload) if minimal else payload)

    for n in range(1, versions + 1):
        extra: list[dict[str, Any]] = []
        if n == 2:
            extra = [
                {
                    "prompt_sequences_id": {
                        "sequence_name": "UnfinishedDraft",
                        "status": "draft",
                        "prompts_in_sequence": [
                            {
                                "prompts_id": {
                                    "name": "WIP",
                                    "text": "not ready",
                                    "status": "published",
                                }
                            }
                        ],
                    }
                }
            ]
        payload = version_payload(n, variant=f" (v{n})", extra_sequences=extra)
        if n == 2:
            first_seq = payload["sequences_in_set"][0]["prompt_sequences_id"]
            first_seq["prompts_in_sequence"].append(
                {
                    "prompts_id": {
                        "name": "Draft Prompt",
                        "text": "an unpublished prompt",
                        "order_in_sequence": 0,
                        "status": "draft",
                    }
                }
            )
        create(payload)
    create(version_payload(versions + 1, status="draft", variant=" (draft)"))
    create(version_payload(versions + 2, status="archived", variant=" (old)"))


# -- evaluation sets ---------------------------------------------------------------------

# Storybench's evaluator reads each criterion's instructions whole; they run to paragraphs.
CRITERIA: dict[str, tuple[str, str]] = {
    "creativity": (
        "Originality and imagination of the response",
        "Judge how original the response is, set against what a competent writer would "
        "produce from the same prompt.\n\n"
        "Reward unexpected premises, fresh images and structural risks that pay off. A twist "
        "that is merely surprising, without being earned by what came before, is not "
        "creativity.\n\n"
        "1: derivative, a familiar template followed closely.\n"
        "3: competent, with one or two ideas of its own.\n"
        "5: distinctive; the reader could not have predicted it, and it works.",
    ),
    "coherence": (
        "Logical flow and consistency across the sequence",
        "Read the whole sequence of responses before scoring.\n\n"
        "Check that names, facts, timelines and tone carry over from one response to the "
        "next, and that each response answers its own prompt while building on the earlier "
        "ones. Contradictions the text does not acknowledge count against it.\n\n"
        "1: the responses read as unrelated pieces.\n"
        "5: one work, consistent throughout, each part needing the others.",
    ),
    "character_depth": (
        "Complexity and believability of characters",
        "Look at the people in the text, not at the plot.\n\n"
        "Do they want something? Do they change, or resist changing, for reasons the text "
        "makes visible? Are they more than their function in the story? Interior life shown "
        "through action and choice scores higher than interior life stated.\n\n"
        "Score 1 for names attached to events and 5 for characters a reader would recognise "
        "in a new scene.",
    ),
    "dialogue_quality": (
        "Naturalness and purpose of dialogue",
        "Judge only the dialogue; a response without any scores 3 unless the prompt asked "
        "for it.\n\n"
        "Good dialogue sounds spoken, differs from speaker to speaker, and does work: it "
        "reveals character, moves the scene, or withholds something. Exposition delivered "
        "as conversation counts against it.\n\n"
        "1: stilted or interchangeable voices. 5: every line could belong to one speaker only.",
    ),
    "visual_imagery": (
        "Vividness of description and visual storytelling",
        "Consider how much the reader sees, and how economically.\n\n"
        "Concrete, specific detail beats adjectives; an image that carries meaning beats "
        "decoration. For the film prompts, judge whether the described frames could be shot "
        "as written.\n\n"
        "1: abstract or generic description. 5: images that stay with the reader and serve "
        "the story.",
    ),
    "conceptual_depth": (
        "Thematic richness and intellectual substance",
        "Ask what the piece is about beneath its events.\n\n"
        "Reward themes developed through the story rather than announced, ideas that are "
        "complicated rather than resolved too neatly, and subtext a second reading "
        "rewards.\n\n"
        "1: no discernible theme, or a moral stated outright.\n"
        "5: layered meaning that grows from the material.",
    ),
    "adaptability": (
        "Handling of the prompt's constraints and genre",
        "Compare the response with what the prompt asked for: form, genre, length, voice and "
        "any explicit constraint.\n\n"
        "A response that follows the letter of the prompt but misses its intent scores in "
        "the middle; one that bends a constraint deliberately and to good effect may score "
        "high.\n\n"
        "Use the whole scale from 1 to 10: 1 ignores the prompt, 10 makes the constraints "
        "look like the reason the piece exists.",
    ),
}

FIRST_CRITERIA = (
    "creativity",
    "coherence",
    "character_depth",
    "dialogue_quality",
    "visual_imagery",
)
ADDED_CRITERIA = ("conceptual_depth", "adaptability")
CRITERION_SCALES = {"adaptability": 10}  # every other criterion is scored 1..5

SCORING_GUIDELINES = {
    "standard": (
        "Score each criterion on its own scale, independently of the others.\n\n"
        "Justify every score in one or two sentences that cite the text. Do not reward "
        "length for its own sake, and do not penalise a response for the prompt's "
        "limitations."
    ),
    "strict": (
        "Score as an editor deciding what to publish.\n\n"
        "Start every criterion from the middle of its scale and move only for reasons you "
        "can quote. Half points are not allowed; when torn between two scores, give the "
        "lower one and say why."
    ),
    "lenient (unused)": "A second scoring item: storybench reads only the first one.",
}

MANY_CRITERIA = 120
"""Criteria in evaluation version 2: more than the 100 Directus returns without ``deep``."""


def criterion_item(name: str, *, minimal: bool = False) -> dict[str, Any]:
    """A new ``evaluation_criteria`` item for one of :data:`CRITERIA`."""
    description, criteria = CRITERIA[name]
    item: dict[str, Any] = {
        "name": name,
        "scale": CRITERION_SCALES.get(name, 5),
        "criteria": criteria,
    }
    if not minimal:
        item["description"] = description
    return item


def many_criterion_item(index: int, *, minimal: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": f"aspect_{index:03d}",
        "scale": 1 + index % 10,
        "criteria": f"Judge aspect {index:03d} of the response.\n\nCite the text.",
    }
    if not minimal:
        item["description"] = f"Aspect {index:03d}"
    return item


def scoring_item(key: str, *, minimal: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"guidelines": SCORING_GUIDELINES[key]}
    if not minimal:
        item["name"] = key
    return item


def evaluation_payload(
    version_number: int,
    criteria: list[dict[str, Any] | int],
    scoring: list[dict[str, Any] | int],
    *,
    status: str = "published",
    minimal: bool = False,
    based_on: int | None = None,
) -> dict[str, Any]:
    """A nested create payload for ``POST /items/evaluation_versions``.

    ``criteria`` and ``scoring`` hold new items (dicts) or ids of existing ones: storybench's
    versions share criteria, attached to several versions through the junction.
    """
    payload: dict[str, Any] = {
        "version_number": version_number,
        "status": status,
        "evaluation_criteria_in_version": [{"evaluation_criteria_id": c} for c in criteria],
        "scoring_in_version": [{"scoring_id": s} for s in scoring],
    }
    if not minimal:
        payload |= {
            "version_name": f"Evaluation criteria v{version_number}",
            "description": "Sample evaluation criteria for the local Directus",
            "published_by": "editor@example.com",
            "based_on_version_number": based_on,
        }
        if status == "published":
            payload["pubslihed_at"] = f"2025-06-{version_number:02d}T12:00:00Z"
    return payload


def _linked_ids(server: DirectusServer, version_id: int, alias: str, column: str) -> list[int]:
    with server.admin() as c:
        r = c.get(
            f"/items/evaluation_versions/{version_id}",
            # A number, not -1: a server started with QUERY_LIMIT_MAX cuts -1 to it.
            params={"fields": f"{alias}.{column}", "deep": f'{{"{alias}":{{"_limit":1000000}}}}'},
        )
        r.raise_for_status()
        return [int(row[column]) for row in r.json()["data"][alias]]


def seed_evaluation_sets(server: DirectusServer, *, minimal: bool = False) -> None:
    """Evaluation versions shaped like storybench's.

    1: five criteria (scale 1..5) and one scoring item.
    2: :data:`MANY_CRITERIA` criteria and no scoring item (guidelines ``""``).
    3: version 1's five criteria, attached again, plus ``conceptual_depth`` and
       ``adaptability`` (scale 1..10); two scoring items, of which the first counts.
    4: a draft and 5: an archived version, which must stay hidden.
    """
    v1 = server.create_evaluation_version(
        evaluation_payload(
            1,
            [criterion_item(n, minimal=minimal) for n in FIRST_CRITERIA],
            [scoring_item("standard", minimal=minimal)],
            minimal=minimal,
        )
    )
    server.create_evaluation_version(
        evaluation_payload(
            2,
            [many_criterion_item(i, minimal=minimal) for i in range(MANY_CRITERIA)],
            [],
            minimal=minimal,
            based_on=1,
        )
    )
    shared: list[dict[str, Any] | int] = list(
        _linked_ids(server, v1, "evaluation_criteria_in_version", "evaluation_criteria_id")
    )
    server.create_evaluation_version(
        evaluation_payload(
            3,
            shared + [criterion_item(n, minimal=minimal) for n in ADDED_CRITERIA],
            [
                scoring_item("strict", minimal=minimal),
                scoring_item("lenient (unused)", minimal=minimal),
            ],
            minimal=minimal,
            based_on=1,
        )
    )
    draft_only = {"name": "draft_only", "scale": 5, "criteria": "Not ready."}
    server.create_evaluation_version(
        evaluation_payload(4, [draft_only], [], status="draft", minimal=minimal)
    )
    server.create_evaluation_version(
        evaluation_payload(
            5,
            [criterion_item("creativity", minimal=minimal)],
            [scoring_item("standard", minimal=minimal)],
            status="archived",
            minimal=minimal,
        )
    )


def seed_all(server: DirectusServer, *, minimal: bool = False) -> None:
    """Every sample: prompt sets and evaluation sets."""
    seed_sample_sets(server, minimal=minimal)
    seed_evaluation_sets(server, minimal=minimal)
