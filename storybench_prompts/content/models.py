"""Domain models: the flat sets storybench runs (prompt sets, evaluation criteria), their
provenance and storybench's ``config_hash``. No I/O here; what Directus stores is in
``directus_items`` and the conversions are in ``prompt_sets`` and ``evaluation_sets``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    WrapSerializer,
)

__all__ = [
    "Criterion",
    "EvaluationSet",
    "Prompt",
    "PromptSet",
    "Provenance",
    "ReadOnlyMapping",
    "Source",
    "Status",
    "VersionInfo",
    "VersionedContent",
    "compute_config_hash",
    "rehash",
]

DirectusId = int | str

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(Mapping[K, V]):
    """A read-only dict: what every served set holds, since one instance goes to every caller.

    Unlike ``types.MappingProxyType`` it can be hashed, deep-copied and pickled.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        return self._data == other

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenDict[K, V]], tuple[dict[K, V]]]:
        return (type(self), (self._data,))


def _serialize_as_dict(value: Mapping[Any, Any], handler: SerializerFunctionWrapHandler) -> Any:
    return handler(dict(value))


ReadOnlyMapping = Annotated[
    Mapping[K, V], AfterValidator(FrozenDict), WrapSerializer(_serialize_as_dict)
]
"""A mapping field validated into a :class:`FrozenDict` and serialised as a plain dict."""


class Status(StrEnum):
    """Publication status of every Directus item in the schema."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class VersionInfo(BaseModel):
    """One entry of a version listing (no prompts)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int
    version_name: str | None = None
    directus_id: DirectusId | None = None
    status: Status = Status.PUBLISHED
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    published_at: datetime | None = None
    config_hash: str | None = None
    """Known only where the listing holds content (the mirrors); None from Directus."""


class Prompt(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    text: str


Source = Literal["cache", "directus", "mirror"]


class Provenance(BaseModel):
    """Where a served prompt set came from, and how old it is.

    ``source`` is how this call was answered; ``origin`` where the content was first read
    (``directus`` or the mirror's name); ``stale`` that it is past its TTL, ``hedged`` that
    Directus was slow, ``origin_error`` (the error's kind) that Directus failed. ``fetched_at_epoch`` is wall-clock seconds when the
    content was read from its origin; :attr:`age` is measured from it.
    """

    model_config = ConfigDict(frozen=True)

    source: Source
    origin: str
    fetched_at_epoch: float
    stale: bool = False
    hedged: bool = False
    origin_error: str | None = None
    """Set when this copy was served because Directus failed: the kind of that failure."""

    @property
    def fetched_at(self) -> datetime:
        return datetime.fromtimestamp(self.fetched_at_epoch, tz=UTC)

    @property
    def age(self) -> float:
        """Seconds since the content was read from its origin."""
        return max(0.0, time.time() - self.fetched_at_epoch)

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "origin": self.origin,
            "fetched_at": self.fetched_at.isoformat(),
            "age_seconds": round(self.age, 3),
            "stale": self.stale,
            "hedged": self.hedged,
            "origin_error": self.origin_error,
        }


def compute_config_hash(
    sequences: Mapping[str, list[Mapping[str, str]]] | Mapping[str, Any],
    version: int,
    directus_id: DirectusId | None,
) -> str:
    """storybench's ``config_hash``: 16 hex chars of SHA-256 over canonical JSON.

    The JSON is ``{"sequences": ..., "version": N, "directus_id": ID}`` with sorted keys,
    no spaces and non-ASCII escaped, exactly as storybench's ``sync-prompts`` computes it, so a
    mirror document written by either side is recognised by the other.
    """
    return _sha256_hex(_canonical({"sequences": sequences}, version, directus_id))[:16]


def _canonical(body: Mapping[str, Any], version: int, directus_id: DirectusId | None) -> str:
    payload = {**body, "version": version, "directus_id": directus_id}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VersionedContent(BaseModel):
    """What every served content kind shares: a version, where it came from, and its hash.

    Subclasses add their content fields and say, in :meth:`body`, which plain data the hash
    covers. Instances are immutable; the hashes are computed once.
    """

    model_config = ConfigDict(frozen=True)

    version: int
    version_name: str | None = None
    directus_id: DirectusId | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    published_at: datetime | None = None
    """When the version was published in Directus (not part of the hash)."""
    provenance: Provenance | None = None

    # The keys of the Directus rows it was read from (``content.tracking``), when it was read
    # from Directus: what maps a change event to the versions it touches. Not content.
    _directus_keys: Mapping[str, frozenset[int | str]] | None = PrivateAttr(default=None)

    def directus_keys(self) -> Mapping[str, frozenset[int | str]] | None:
        """The keys of the Directus rows this set was read from, by collection (None when it
        was not read from Directus)."""
        return self._directus_keys

    def read_from(self, keys: Mapping[str, frozenset[int | str]]) -> Self:
        """This set, noting the Directus rows it was read from (the source calls it once)."""
        self._directus_keys = keys
        return self

    def body(self) -> dict[str, Any]:
        """The content as plain data (what the hash covers, beside version and directus_id)."""
        raise NotImplementedError

    @cached_property
    def config_hash(self) -> str:
        """storybench's 16-hex ``config_hash`` of this content."""
        return self.content_hash[:16]

    @cached_property
    def content_hash(self) -> str:
        """Full SHA-256 (64 hex) of the same canonical JSON; its prefix is ``config_hash``."""
        return _sha256_hex(_canonical(self.body(), self.version, self.directus_id))

    def to_storybench(self) -> dict[str, Any]:
        """storybench's flat format, as its own client's conversion returns it."""
        return {
            **self.body(),
            "version": self.version,
            "directus_id": self.directus_id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    def to_json_dict(self) -> dict[str, Any]:
        """The flat format plus name, hashes and provenance: what a benchmark run records."""
        data = self.to_storybench()
        data["version_name"] = self.version_name
        data["published_at"] = self.published_at.isoformat() if self.published_at else None
        data["config_hash"] = self.config_hash
        data["content_hash"] = self.content_hash
        data["provenance"] = self.provenance.describe() if self.provenance else None
        return data

    def with_provenance(self, provenance: Provenance) -> Self:
        # model_copy keeps the cached hashes, which depend on content only.
        return self.model_copy(update={"provenance": provenance})

    def info(self) -> VersionInfo:
        return VersionInfo(
            version=self.version,
            version_name=self.version_name,
            directus_id=self.directus_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            published_at=self.published_at,
            config_hash=self.config_hash,
        )


def rehash(content: VersionedContent) -> str:
    """The ``config_hash`` of ``content`` computed now from its fields.

    Never the hash cached on the instance (a copy made with ``model_copy(update=...)`` keeps
    the old one): what a mirror copy is checked with before it is served, exported or verified.
    """
    return _sha256_hex(_canonical(content.body(), content.version, content.directus_id))[:16]


class PromptSet(VersionedContent):
    """The flat prompt set storybench runs: ``{sequence_name: [{name, text}, ...]}``.

    Sequence order and prompt order are meaningful (see ``docs/architecture.md``). Instances are
    immutable; build them with :func:`storybench_prompts.convert_version` or
    :func:`storybench_prompts.prompt_set_from_storybench`, which enforce the content rules.
    """

    sequences: ReadOnlyMapping[str, tuple[Prompt, ...]]
    """Read-only: one instance is handed to every caller of the cache."""

    def body(self) -> dict[str, Any]:
        return {"sequences": self.sequences_as_dicts()}

    def sequences_as_dicts(self) -> dict[str, list[dict[str, str]]]:
        return {
            name: [{"name": p.name, "text": p.text} for p in prompts]
            for name, prompts in self.sequences.items()
        }

    def prompt_count(self) -> int:
        return sum(len(p) for p in self.sequences.values())


class Criterion(BaseModel):
    """One evaluation criterion as storybench's evaluator reads it."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Display name: the Directus name title-cased (``character_depth`` -> ``Character Depth``)."""
    description: str
    scale: tuple[int, int]
    """``(1, maximum score)``."""
    criteria: str
    """The full instructions for the evaluator."""


class EvaluationSet(VersionedContent):
    """storybench's evaluation criteria: criteria keyed by their Directus name, and guidelines."""

    criteria: ReadOnlyMapping[str, Criterion]
    """Read-only: one instance is handed to every caller of the cache."""

    scoring_guidelines: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "criteria": {
                key: {
                    "name": c.name,
                    "description": c.description,
                    "scale": list(c.scale),
                    "criteria": c.criteria,
                }
                for key, c in self.criteria.items()
            },
            "scoring_guidelines": self.scoring_guidelines,
        }

    def to_storybench(self) -> dict[str, Any]:
        # storybench's evaluation structure carries the version name too.
        return {**super().to_storybench(), "version_name": self.version_name}
