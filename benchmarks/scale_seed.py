"""Seed a local Directus for the scale benchmark: V published prompt-set versions, each with
its own two sequences of three prompts, plus one sequence every version shares.

A version is one nested create; versions go to Directus in batches (``POST`` of a list), so
200 versions take a handful of requests. The evaluation samples are seeded too, so
``sync --all`` has both kinds to compare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from devserver.directus import DirectusServer
from devserver.sample_data import seed_evaluation_sets

SHARED_SEQUENCE = "SharedWarmUp"
OWN_SEQUENCES = ("Story", "Dialogue")
PROMPTS_PER_SEQUENCE = 3
BATCH = 25


@dataclass
class Seeded:
    """What was created: ids the scenarios edit."""

    versions: int
    shared_sequence_id: int
    shared_prompt_ids: list[int]
    # version number -> the ids of the prompts only that version uses
    own_prompt_ids: dict[int, list[int]] = field(default_factory=dict)
    evaluation_versions: int = 0
    seconds: float = 0.0


def _prompt(name: str, text: str, order: int) -> dict[str, Any]:
    return {
        "name": name,
        "text": text,
        "order_in_sequence": order,
        "status": "published",
    }


def _sequence(name: str, texts: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "sequence_name": name,
        "sequence_description": f"The {name} sequence",
        "status": "published",
        "prompts_in_sequence": [
            {"prompts_id": _prompt(n, t, i + 1)} for i, (n, t) in enumerate(texts)
        ],
    }


def own_sequences(version_number: int, *, tag: str = "") -> list[dict[str, Any]]:
    """The two sequences only ``version_number`` uses, as nested junction items."""
    return [
        {
            "prompt_sequences_id": _sequence(
                name,
                [
                    (f"{name} step {p + 1}", f"{name} prompt {p + 1} of v{version_number}{tag}.")
                    for p in range(PROMPTS_PER_SEQUENCE)
                ],
            )
        }
        for name in OWN_SEQUENCES
    ]


def version_payload(
    version_number: int, shared_sequence_id: int | None, *, status: str = "published", tag: str = ""
) -> dict[str, Any]:
    """One nested create: the version, its own sequences and prompts, the shared sequence."""
    sequences = own_sequences(version_number, tag=tag)
    if shared_sequence_id is not None:
        sequences.append({"prompt_sequences_id": shared_sequence_id})
    return {
        "version_number": version_number,
        "version_name": f"Scale set v{version_number}",
        "status": status,
        "description": "Seeded by benchmarks.scale",
        "sequences_in_set": sequences,
    }


def _data(response: Any) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code} {response.text[:500]}"
        )
    return response.json()["data"]


def seed(server: DirectusServer, versions: int, *, evaluations: bool = True) -> Seeded:
    started = time.monotonic()
    with server.admin() as admin:
        shared = _data(
            admin.post(
                "/items/prompt_sequences",
                params={"fields": "id,prompts_in_sequence.prompts_id"},
                json=_sequence(
                    SHARED_SEQUENCE,
                    [
                        (f"Warm-up {p + 1}", f"Shared warm-up prompt {p + 1}.")
                        for p in range(PROMPTS_PER_SEQUENCE)
                    ],
                ),
            )
        )
        shared_id = int(shared["id"])
        shared_prompts = sorted(int(j["prompts_id"]) for j in shared["prompts_in_sequence"])
        own: dict[int, list[int]] = {}
        fields = (
            "version_number,sequences_in_set.prompt_sequences_id.id,"
            "sequences_in_set.prompt_sequences_id.prompts_in_sequence.prompts_id"
        )
        for first in range(1, versions + 1, BATCH):
            numbers = range(first, min(versions, first + BATCH - 1) + 1)
            created = _data(
                admin.post(
                    "/items/prompt_set_versions",
                    params={"fields": fields, "deep[sequences_in_set][_limit]": "-1"},
                    json=[version_payload(n, shared_id) for n in numbers],
                )
            )
            for item in created:
                ids = [
                    int(j["prompts_id"])
                    for s in item["sequences_in_set"]
                    if int(s["prompt_sequences_id"]["id"]) != shared_id
                    for j in s["prompt_sequences_id"]["prompts_in_sequence"]
                ]
                own[int(item["version_number"])] = sorted(ids)
    seeded = Seeded(versions, shared_id, shared_prompts, own)
    if evaluations:
        seed_evaluation_sets(server)
        seeded.evaluation_versions = 3  # published ones; a draft and an archived stay hidden
    seeded.seconds = time.monotonic() - started
    return seeded
