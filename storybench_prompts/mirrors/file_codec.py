"""The file mirror's documents: a set as JSON with its hashes and provenance, and back.

Decoding re-validates the content (its kind's rules) and re-hashes it: a document whose stored
hash does not match what it holds is a :class:`MirrorCorruptError` and is never served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TypeVar

from .._exceptions import InvalidPromptSetError, MirrorCorruptError, MirrorUnavailableError
from ..content.kinds import ContentKind
from ..content.models import Provenance, VersionedContent
from . import integrity

__all__ = ["SCHEMA_VERSION", "decode", "document_of", "encode", "parse"]

C = TypeVar("C", bound=VersionedContent)

SCHEMA_VERSION = 2
_LATEST_EPOCH = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second datetime holds


def document_of(kind: ContentKind[C], content: C, *, withdrawn_at: float | None) -> dict[str, Any]:
    provenance = content.provenance
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind.name,
        "config_hash": content.config_hash,
        "content_hash": content.content_hash,
        "origin": provenance.origin if provenance else "directus",
        "fetched_at": provenance.fetched_at_epoch if provenance else time.time(),
        "saved_at": time.time(),
    }
    if withdrawn_at is not None:
        document["withdrawn_at"] = withdrawn_at
    document[kind.file_key] = {
        **content.to_storybench(),
        "version_name": content.version_name,
        "published_at": content.published_at.isoformat() if content.published_at else None,
    }
    return document


def encode(path: Path, document: dict[str, Any]) -> bytes:
    try:
        return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
    except ValueError as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise MirrorUnavailableError(
            f"cannot write {path}: the content cannot be stored as JSON text: {exc}"
        ) from None


def parse(path: Path, raw: bytes) -> dict[str, Any]:
    """A document from a file's bytes (:class:`MirrorCorruptError` when it is not one)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MirrorCorruptError(
            f"{path} is not valid JSON ({exc}); it will not be served", location=str(path)
        ) from exc
    if not isinstance(document, dict):
        raise MirrorCorruptError(f"{path} does not hold an object", location=str(path))
    return document


def decode(kind: ContentKind[C], path: Path, document: dict[str, Any]) -> C:
    member = document.get(kind.file_key)
    if not isinstance(member, dict):
        raise MirrorCorruptError(f"{path} lacks the {kind.file_key!r} member", location=str(path))
    try:
        content = kind.from_storybench(member, context=str(path))
    except InvalidPromptSetError as exc:
        raise MirrorCorruptError(
            f"{path} holds an invalid {kind.noun}: {exc}", location=str(path)
        ) from exc
    # The content was rebuilt from the file, so its hash is computed afresh: a re-hash.
    if document.get("config_hash") != content.config_hash or document.get("content_hash") not in (
        None,
        content.content_hash,
    ):
        raise integrity.mismatch(str(path), document.get("config_hash"), content.config_hash)
    fetched_at = document.get("fetched_at")
    fetched = float(fetched_at) if isinstance(fetched_at, int | float) else time.time()
    if not 0.0 <= fetched <= _LATEST_EPOCH:  # NaN fails this too
        raise MirrorCorruptError(
            f"{path} says it was read at {fetched_at!r}, not a time", location=str(path)
        )
    return content.with_provenance(
        Provenance(
            source="mirror",
            origin=str(document.get("origin", "directus")),
            fetched_at_epoch=fetched,
        )
    )
