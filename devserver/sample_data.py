"""Sample prompt sets shaped like storybench's: five sequences of three prompts per version."""

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


def seed_sample_sets(server: DirectusServer, versions: int = 3) -> None:
    """Published versions 1..N, plus a draft N+1 and an archived N+2 that must stay hidden.

    Version 2 also holds a draft sequence and a draft prompt, which must be left out.
    """
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
        server.create_version(payload)
    server.create_version(version_payload(versions + 1, status="draft", variant=" (draft)"))
    server.create_version(version_payload(versions + 2, status="archived", variant=" (old)"))
