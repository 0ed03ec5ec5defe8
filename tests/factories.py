"""Raw Directus payloads and flat sets for tests (no I/O)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import httpx

from storybench_prompts import ContentKind, Problem, Prompt, PromptSet
from storybench_prompts.content.models import Criterion, EvaluationSet

_ids = itertools.count(1000)


def raw_prompt(
    name: str,
    text: str | None = None,
    *,
    order: int | None = None,
    status: str = "published",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "prompts_id": {
            "id": next(_ids),
            "name": name,
            "text": text if text is not None else f"Write about {name}.",
            "order_in_sequence": order,
            "status": status,
            **extra,
        }
    }


def raw_sequence(
    name: str, prompts: list[dict[str, Any]], *, status: str = "published", **extra: Any
) -> dict[str, Any]:
    return {
        "id": next(_ids),
        "prompt_sequences_id": {
            "id": next(_ids),
            "sequence_name": name,
            "status": status,
            "prompts_in_sequence": prompts,
            **extra,
        },
    }


def raw_version(
    version: int = 1,
    sequences: list[dict[str, Any]] | None = None,
    *,
    status: str = "published",
    **extra: Any,
) -> dict[str, Any]:
    if sequences is None:
        sequences = [
            raw_sequence(f"Seq{s}", [raw_prompt(f"P{s}{p}", order=p) for p in range(1, 4)])
            for s in range(1, 6)
        ]
    return {
        "id": version + 100,
        "version_number": version,
        "version_name": f"v{version}",
        "status": status,
        "date_created": "2025-06-01T10:00:00.000Z",
        "date_updated": None,
        "sequences_in_set": sequences,
        **extra,
    }


def flat_set(
    version: int = 1,
    sequences: int = 2,
    prompts: int = 3,
    *,
    text_suffix: str = "",
    directus_id: int | None = None,
) -> PromptSet:
    return PromptSet(
        version=version,
        version_name=f"v{version}",
        directus_id=directus_id if directus_id is not None else version + 100,
        sequences={
            f"Seq{s}": tuple(
                Prompt(name=f"P{s}.{p}", text=f"Prompt {s}.{p}{text_suffix}")
                for p in range(prompts)
            )
            for s in range(sequences)
        },
    )


def directus_error(
    status: int, code: str, message: str = "boom", headers: dict[str, str] | None = None
) -> httpx.Response:
    """An error response in Directus's shape: ``{"errors": [{message, extensions.code}]}``."""
    return httpx.Response(
        status,
        json={"errors": [{"message": message, "extensions": {"code": code}}]},
        headers=headers,
    )


def flat_evaluation_set(
    version: int = 1,
    criteria: int = 3,
    *,
    text_suffix: str = "",
    directus_id: int | None = None,
) -> EvaluationSet:
    """An evaluation set as storybench's evaluator reads it: criteria keyed by Directus name."""
    return EvaluationSet(
        version=version,
        version_name=f"eval v{version}",
        directus_id=directus_id if directus_id is not None else version + 500,
        criteria={
            f"criterion_{c}": Criterion(
                name=f"Criterion {c}",
                description=f"How well the text does {c}.",
                scale=(1, 5 + c),
                criteria=f"Score criterion {c} from 1 to {5 + c}.{text_suffix}",
            )
            for c in range(criteria)
        },
        scoring_guidelines=f"Be fair.{text_suffix}",
    )


class _LaxKind(ContentKind[Any]):
    """A kind whose rules accept anything: for tests of what a mirror does with content the
    rules would refuse, had it got that far."""

    def problems(self, content: Any) -> list[Problem]:
        return []


def lax(kind: ContentKind[Any]) -> ContentKind[Any]:
    """``kind`` with every content rule switched off."""
    return _LaxKind(**{f.name: getattr(kind, f.name) for f in dataclasses.fields(kind)})
