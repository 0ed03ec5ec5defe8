"""storybench's ``DirectusClient``, served by this library: the one-line migration.

``from storybench_prompts import DirectusClient`` in place of storybench's import keeps every
call site as it is: the constructor ``(base_url=None, token=None, timeout=60)``, the methods,
the models' field names, ``None`` for a version that does not exist, and errors that are all
``DirectusClientError``. Behind it, every client of one event loop with the same URL and token
shares one caching repository (``build_repository``: cache, single-flight, the hedge to the
mirror, stale-if-error), so storybench's habit of building a fresh client at each call site
costs one Directus request per TTL, and a cold or down Directus costs ``fallback_after``.

This module is a compatibility surface over the library, not a second engine: content goes
through the same Directus source, content rules and cache as :class:`PromptSet`; this module
only reshapes what they serve into storybench's models.

How the shared repository lives: it is entered (``async with``) by a host task of its own on
the running asyncio loop, which waits until it is cancelled. ``asyncio.run`` cancels every
task left when its main coroutine returns, so the host leaves the ``async with`` and closes the
repository's connections before the loop closes. The registry is keyed weakly by loop, and a
host removes its own entry when it ends, so a second ``asyncio.run`` starts afresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
)

from ..._compose import build_repository, build_source
from ..._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusClientError,
    DirectusConfigurationError,
    DirectusForbiddenError,
    DirectusRequestError,
    InvalidPromptSetError,
    Problem,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
    StorybenchPromptsError,
)
from ..._settings import Settings
from ...cache.engine import CachingRepository
from ...content.kinds import EVALUATION_SETS, PROMPT_SETS, ContentKind
from ...content.models import (
    DirectusId,
    EvaluationSet,
    PromptSet,
    ReadOnlyMapping,
    Status,
    VersionedContent,
    VersionInfo,
)
from ...sources.base import PromptRepository
from ...sources.directus import DirectusSource

__all__ = [
    "CriterionInVersion",
    "DirectusClient",
    "DirectusEvaluationCriterion",
    "DirectusEvaluationVersion",
    "DirectusInvalidContentError",
    "DirectusPrompt",
    "DirectusPromptSequence",
    "DirectusPromptSetVersion",
    "DirectusScoring",
    "DirectusUnavailableError",
    "PromptInSequence",
    "PublicationStatus",
    "ScoringInVersion",
    "SequenceInSet",
    "StorybenchEvaluationCriterion",
    "StorybenchEvaluationStructure",
    "StorybenchPromptConfig",
    "StorybenchPromptsStructure",
    "close_shared_clients",
]

logger = logging.getLogger(__name__)

PublicationStatus = Status
"""storybench's name for the publication status (``draft``, ``published``, ``archived``)."""


# -- errors: everything a caller sees is a DirectusClientError ------------------------------


class DirectusUnavailableError(DirectusClientError, PromptSetUnavailableError):
    """Nothing could serve the call: Directus failed, and no cached or mirrored copy was there.

    ``causes`` holds each failure, Directus's first; ``status``, ``code`` and ``detail`` are
    those of the first Directus error among them (so a rejected token still reads as 401).
    """

    def __init__(
        self, message: str, *, causes: list[BaseException], described: bool = False
    ) -> None:
        if described:  # the message already names each cause (a wrapped library error)
            self.causes = tuple(causes)
            StorybenchPromptsError.__init__(self, message)
        else:
            PromptSetUnavailableError.__init__(self, message, causes=causes)
        first = next((c for c in self.causes if isinstance(c, DirectusClientError)), None)
        self.status = first.status if first is not None else None
        self.code = first.code if first is not None else None
        self.detail = first.detail if first is not None else None

    @property
    def directus_error(self) -> DirectusClientError | None:
        """The error Directus itself gave, if it was reached at all."""
        return next((c for c in self.causes if isinstance(c, DirectusClientError)), None)


class DirectusInvalidContentError(DirectusClientError, InvalidPromptSetError):
    """The content breaks the rules (``problems`` lists each with its path)."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], *, context: str = "") -> None:
        InvalidPromptSetError.__init__(self, problems, context=context)
        self.status = None
        self.code = None
        self.detail = None


def _client_error(exc: BaseException) -> DirectusClientError:
    """The DirectusClientError a storybench caller catches for any failure of ours."""
    if isinstance(exc, DirectusClientError):
        return exc
    if isinstance(exc, PromptSetUnavailableError):
        return DirectusUnavailableError(str(exc), causes=list(exc.causes), described=True)
    if isinstance(exc, InvalidPromptSetError):
        return DirectusInvalidContentError(exc.problems, context=exc.context)
    if isinstance(exc, ConfigurationError):
        return DirectusConfigurationError(str(exc))
    if isinstance(exc, ValidationError):  # a setting in the environment is malformed
        return DirectusConfigurationError(f"invalid storybench-prompts setting: {exc}")
    return DirectusUnavailableError(f"{type(exc).__name__}: {exc}", causes=[exc])


def _refuse_if_rejected(shared: _Shared) -> None:
    """A token Directus has rejected, and never accepted, gets no copy fetched by another.

    The mirror is shared by every token, so without this a wrong token would be served what
    the right one mirrored; storybench's own client (and its tests) raise. Once Directus has
    accepted this (URL, token) in this loop, the cache's outage rules apply as for any
    failure: an expired token keeps the benchmark running on the copies it had.
    """
    repository = shared.repository
    if repository is None:
        shared.accepted = True
        return
    status = repository.status()
    if status.last_success_at is not None:
        shared.accepted = True
    elif status.auth_failed:
        raise DirectusAuthenticationError(
            f"Directus rejects this client's token ({status.last_error}); "
            "no mirrored copy is served to it",
            status=401,
        )
    elif status.last_error_kind == DirectusForbiddenError.__name__:
        # A token Directus knows but may not read the prompts with: refused the same way.
        raise DirectusForbiddenError(
            f"Directus refuses this client's token ({status.last_error}); "
            "no mirrored copy is served to it",
            status=403,
        )


# -- storybench's models, by its field names -----------------------------------------------
#
# Served objects are shared by every caller (a warm call returns the very object it returned
# before), so they are frozen and their lists are tuples: one caller cannot change what the
# next one reads. ``model_dump(mode="json")`` gives lists, as storybench's own models do.


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)

    def __eq__(self, other: object) -> bool:
        # Fields only: the private attributes are links to the served set (with its
        # provenance), which must not make equal content compare unequal.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__


class DirectusPrompt(_Frozen):
    """A prompt as storybench's model names its fields."""

    id: DirectusId | None = None
    name: str
    text: str
    status: PublicationStatus
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None
    guidance_notes: str | None = None
    expected_outcome_summary: str | None = None
    tags: Any = None
    order_in_sequence: int | None = None
    prompt_sequence: int | None = None


class PromptInSequence(_Frozen):
    prompts_id: DirectusPrompt


class DirectusPromptSequence(_Frozen):
    id: DirectusId | None = None
    sequence_name: str
    sequence_description: str | None = None
    status: PublicationStatus
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None
    prompts_in_sequence: tuple[PromptInSequence, ...] | None = None


class SequenceInSet(_Frozen):
    prompt_sequences_id: DirectusPromptSequence


class DirectusPromptSetVersion(_Frozen):
    """A prompt set version as storybench's model names its fields.

    Built from the set this library serves, so it holds only published sequences and prompts,
    prompts in ``order_in_sequence`` order (``order_in_sequence`` is the 1-based position), and
    no item ids, descriptions, tags or notes of sequences and prompts (those are None).
    """

    id: DirectusId | None = None
    version_number: int
    version_name: str | None = None
    description: str | None = None
    status: PublicationStatus
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None
    published_at: datetime | None = None
    published_by: Any = None
    based_on_version_number: int | None = None
    sequences_in_set: tuple[SequenceInSet, ...] | None = None
    prompt_sequences: tuple[DirectusPromptSequence, ...] | None = None

    _served: PromptSet | None = PrivateAttr(default=None)
    _structure: StorybenchPromptsStructure | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)


class StorybenchPromptConfig(_Frozen):
    name: str
    text: str


class StorybenchPromptsStructure(_Frozen):
    """What ``fetch_prompts`` returns: storybench's flat prompt set.

    ``created_at`` is never None: the version's ``date_created``, else when the content was read
    from its origin. :attr:`config_hash` is storybench's hash of these prompts.
    """

    sequences: ReadOnlyMapping[str, tuple[StorybenchPromptConfig, ...]]
    version: int
    directus_id: DirectusId | None = None
    created_at: datetime
    updated_at: datetime | None = None

    _content: PromptSet | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)

    @property
    def config_hash(self) -> str:
        """storybench's ``config_hash`` of these prompts (what its evaluations record)."""
        return _config_hash(self, PROMPT_SETS)


DirectusPromptSetVersion.model_rebuild()


class DirectusEvaluationCriterion(_Frozen):
    """An evaluation criterion as storybench's model names its fields."""

    id: DirectusId | None = None
    name: str
    description: str | None = None
    scale: int
    criteria: str
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None


class DirectusScoring(_Frozen):
    id: DirectusId | None = None
    name: str | None = None
    guidelines: str
    sort: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None


class CriterionInVersion(_Frozen):
    evaluation_criteria_id: DirectusEvaluationCriterion


class ScoringInVersion(_Frozen):
    scoring_id: DirectusScoring


class DirectusEvaluationVersion(_Frozen):
    """An evaluation version as storybench's model names its fields.

    Built from the set this library serves: criteria in the version's order, keyed by their
    Directus name, ``sort`` their 1-based position, no item ids or dates of criteria; at most
    one scoring item, holding the guidelines storybench reads (none when they are empty).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: DirectusId | None = None
    version_number: int
    version_name: str | None = None
    description: str | None = None
    status: PublicationStatus
    date_created: datetime | None = None
    date_updated: datetime | None = None
    user_created: str | None = None
    user_updated: str | None = None
    # storybench's Directus spells the field ``pubslihed_at``; either spelling is read.
    published_at: datetime | None = Field(
        None, validation_alias=AliasChoices("published_at", "pubslihed_at")
    )
    published_by: Any = None
    based_on_version_number: int | None = None
    evaluation_criteria_in_version: tuple[CriterionInVersion, ...] | None = None
    scoring_in_version: tuple[ScoringInVersion, ...] | None = None
    evaluation_criteria: tuple[DirectusEvaluationCriterion, ...] | None = None
    scoring: tuple[DirectusScoring, ...] | None = None

    _served: EvaluationSet | None = PrivateAttr(default=None)
    _structure: StorybenchEvaluationStructure | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)


class StorybenchEvaluationCriterion(_Frozen):
    name: str
    """Title-cased for display: ``character_depth`` is ``Character Depth``."""
    description: str
    scale: tuple[int, int]
    """``(1, maximum)``; storybench's evaluator reads ``scale[0]`` and ``scale[1]``."""
    criteria: str


class StorybenchEvaluationStructure(_Frozen):
    """What ``convert_to_storybench_evaluation_format`` returns: storybench's criteria.

    ``created_at`` is the version's ``date_created`` (storybench stamps the conversion time).
    """

    criteria: ReadOnlyMapping[str, StorybenchEvaluationCriterion]
    scoring_guidelines: str
    version: int
    version_name: str | None = None
    directus_id: DirectusId | None = None
    created_at: datetime
    updated_at: datetime | None = None

    _content: EvaluationSet | None = PrivateAttr(default=None)
    _linked_to: int = PrivateAttr(default=0)

    @property
    def config_hash(self) -> str:
        """The hash of these criteria, computed as storybench's ``config_hash`` is."""
        return _config_hash(self, EVALUATION_SETS)


DirectusEvaluationVersion.model_rebuild()


def _config_hash(structure: Any, kind: ContentKind[Any]) -> str:
    """The served set's hash when ``structure`` is the very object built from it; otherwise
    computed from the structure's own fields."""
    if structure._content is not None and _linked(structure):
        return str(structure._content.config_hash)
    rebuilt: VersionedContent = kind.from_storybench(structure.model_dump(mode="json"))
    return rebuilt.config_hash


def _linked(model: Any) -> bool:
    """Whether ``model`` is the very object its private link to the served set was made for:
    a copy (``model_copy(update=...)``, ``deepcopy``) carries the link but may differ, so it is
    converted from its own fields."""
    return bool(model._linked_to == id(model))


def _created_at(content: VersionedContent) -> datetime:
    if content.created_at is not None:
        return content.created_at
    if content.provenance is not None:
        return content.provenance.fetched_at
    return datetime.now(UTC)


def _prompts_structure(prompt_set: PromptSet) -> StorybenchPromptsStructure:
    structure = StorybenchPromptsStructure(
        sequences={
            name: tuple(StorybenchPromptConfig(name=p.name, text=p.text) for p in prompts)
            for name, prompts in prompt_set.sequences.items()
        },
        version=prompt_set.version,
        directus_id=prompt_set.directus_id,
        created_at=_created_at(prompt_set),
        updated_at=prompt_set.updated_at,
    )
    structure._content = prompt_set
    structure._linked_to = id(structure)
    return structure


def _prompts_version(prompt_set: PromptSet) -> DirectusPromptSetVersion:
    published = PublicationStatus.PUBLISHED
    version = DirectusPromptSetVersion(
        id=prompt_set.directus_id,
        version_number=prompt_set.version,
        version_name=prompt_set.version_name,
        status=published,
        date_created=prompt_set.created_at,
        date_updated=prompt_set.updated_at,
        sequences_in_set=tuple(
            SequenceInSet(
                prompt_sequences_id=DirectusPromptSequence(
                    sequence_name=name,
                    status=published,
                    prompts_in_sequence=tuple(
                        PromptInSequence(
                            prompts_id=DirectusPrompt(
                                name=p.name, text=p.text, status=published, order_in_sequence=i
                            )
                        )
                        for i, p in enumerate(prompts, start=1)
                    ),
                )
            )
            for name, prompts in prompt_set.sequences.items()
        ),
    )
    version._served = prompt_set
    version._linked_to = id(version)
    return version


def _listed_version(info: VersionInfo) -> DirectusPromptSetVersion:
    return DirectusPromptSetVersion(
        id=info.directus_id,
        version_number=info.version,
        version_name=info.version_name,
        description=info.description,
        status=info.status,
        date_created=info.created_at,
        date_updated=info.updated_at,
        published_at=info.published_at,
    )


def _evaluation_structure(evaluation_set: EvaluationSet) -> StorybenchEvaluationStructure:
    structure = StorybenchEvaluationStructure(
        criteria={
            key: StorybenchEvaluationCriterion(
                name=c.name, description=c.description, scale=c.scale, criteria=c.criteria
            )
            for key, c in evaluation_set.criteria.items()
        },
        scoring_guidelines=evaluation_set.scoring_guidelines,
        version=evaluation_set.version,
        version_name=evaluation_set.version_name,
        directus_id=evaluation_set.directus_id,
        created_at=_created_at(evaluation_set),
        updated_at=evaluation_set.updated_at,
    )
    structure._content = evaluation_set
    structure._linked_to = id(structure)
    return structure


def _evaluation_version(evaluation_set: EvaluationSet) -> DirectusEvaluationVersion:
    guidelines = evaluation_set.scoring_guidelines
    version = DirectusEvaluationVersion(
        id=evaluation_set.directus_id,
        version_number=evaluation_set.version,
        version_name=evaluation_set.version_name,
        status=PublicationStatus.PUBLISHED,
        date_created=evaluation_set.created_at,
        date_updated=evaluation_set.updated_at,
        evaluation_criteria_in_version=tuple(
            CriterionInVersion(
                evaluation_criteria_id=DirectusEvaluationCriterion(
                    name=key,
                    description=c.description,
                    scale=c.scale[1],
                    criteria=c.criteria,
                    sort=i,
                )
            )
            for i, (key, c) in enumerate(evaluation_set.criteria.items(), start=1)
        ),
        scoring_in_version=(
            (ScoringInVersion(scoring_id=DirectusScoring(guidelines=guidelines)),)
            if guidelines
            else ()
        ),
    )
    version._served = evaluation_set
    version._linked_to = id(version)
    return version


def _raw(version: object) -> Mapping[str, Any]:
    """A version given to a ``convert_*`` method, as the raw Directus item it stands for."""
    if isinstance(version, Mapping):
        return version
    if isinstance(version, BaseModel):
        # Any pydantic model with Directus's field names works, storybench's own included.
        dumped: dict[str, Any] = version.model_dump(mode="json", exclude_none=True, by_alias=False)
        return dumped
    raise TypeError(
        f"expected a Directus version (a model or a dict), got {type(version).__name__}"
    )


# -- memoised conversions: a warm call builds nothing --------------------------------------

S = TypeVar("S", bound=VersionedContent)
T = TypeVar("T")

_MEMO_LIMIT = 1024


class _Memo(Generic[S, T]):
    """One converted object per served set.

    The cache hands out the same object on every fresh hit, so the first check (is this the
    object this slot was last converted from?) answers a warm call without building anything.
    Other copies of the same content (a stale or mirror copy) share one conversion by content.
    """

    __slots__ = ("_build", "_by_content", "by_slot")

    def __init__(self, build: Callable[[S], T]) -> None:
        self._build = build
        self.by_slot: dict[int | None, tuple[S, T]] = {}
        self._by_content: dict[tuple[object, ...], T] = {}

    def __call__(self, slot: int | None, served: S) -> T:
        hit = self.by_slot.get(slot)
        if hit is not None and hit[0] is served:
            return hit[1]
        return self._convert(slot, served)

    def _convert(self, slot: int | None, served: S) -> T:
        key = (served.content_hash, served.version_name, served.created_at, served.updated_at)
        result = self._by_content.get(key)
        if result is None:
            result = self._build(served)
            if len(self._by_content) >= _MEMO_LIMIT:
                self._by_content.clear()
            self._by_content[key] = result
        if len(self.by_slot) >= _MEMO_LIMIT:
            self.by_slot.clear()
        self.by_slot[slot] = (served, result)
        return result


# -- the shared stack, one per event loop and (URL, token) ----------------------------------

_Key = tuple[str, str]


class _Shared:
    """One loop's stack for one (URL, token): the repository (or a plain source) and its host."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: _Key, settings: Settings) -> None:
        self.key = key
        self.loop = loop
        self.cached = settings.shared_cache
        self.source: DirectusSource[PromptSet]
        self.repository: CachingRepository[PromptSet] | None
        self.prompts: PromptRepository[PromptSet]
        self.evaluations: PromptRepository[EvaluationSet]
        if self.cached:
            repository = build_repository(settings)
            origin = repository.origin
            if not isinstance(origin, DirectusSource):  # pragma: no cover - build_repository's
                raise ConfigurationError("the shared repository's origin is not Directus")
            if repository.evaluations is None:  # pragma: no cover - build_repository's
                raise ConfigurationError("the shared repository serves no evaluation sets")
            self.source = origin
            self.repository = repository
            self.prompts = repository
            self.evaluations = repository.evaluations
            self._resource: Any = repository
        else:
            self.source = build_source(settings)
            self.repository = None
            self.prompts = self.source
            self.evaluations = self.source.for_kind(EVALUATION_SETS)
            self._resource = self.source  # closes the connections both kinds share
        self.prompt_structures: _Memo[PromptSet, StorybenchPromptsStructure] = _Memo(
            _prompts_structure
        )
        self.prompt_versions: _Memo[PromptSet, DirectusPromptSetVersion] = _Memo(_prompts_version)
        self.evaluation_versions: _Memo[EvaluationSet, DirectusEvaluationVersion] = _Memo(
            _evaluation_version
        )
        self.accepted = False
        """Whether Directus has answered this (URL, token) here (``_refuse_if_rejected``)."""
        self.ready = asyncio.Event()
        self.error: BaseException | None = None
        self.usable = False
        url = key[0]
        self.task = loop.create_task(self._host(), name=f"storybench-prompts shared cache {url}")

    async def _host(self) -> None:
        try:
            try:
                await self._resource.__aenter__()
            except BaseException as exc:
                self.error = (
                    exc
                    if isinstance(exc, Exception)
                    else RuntimeError(
                        "the event loop closed the shared Directus cache as it opened"
                    )
                )
                self.ready.set()
                if isinstance(exc, Exception):
                    return  # the waiting callers raise it; nobody awaits this task
                raise
            self.usable = True
            self.ready.set()
            try:
                # Until the loop's shutdown (or close_shared_clients) cancels this task.
                await self.loop.create_future()
            finally:
                self.usable = False
                try:
                    await self._resource.__aexit__(None, None, None)
                except Exception as exc:
                    logger.warning("closing the shared Directus cache failed: %s", exc)
        finally:
            self.usable = False
            _forget(self)

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            # Only swallow the host's own cancellation, never one aimed at the caller.
            if current is not None and current.cancelling():
                raise


_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, _Shared]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()
# The stack the last warm call used: the next call from the same loop with the same URL and
# token finds it with one comparison, without building a weak reference (a WeakKeyDictionary
# lookup builds one). One tuple, replaced whole, so threads never see half of it. It holds
# the stack strongly, so _forget clears it when the stack ends.
_hot: tuple[weakref.ref[asyncio.AbstractEventLoop], _Key, _Shared] | None = None


def _forget(shared: _Shared) -> None:
    global _hot
    with _LOCK:
        hot = _hot
        if hot is not None and hot[2] is shared:
            _hot = None
        entries = _REGISTRY.get(shared.loop)
        if entries is not None and entries.get(shared.key) is shared:
            del entries[shared.key]
            if not entries:
                del _REGISTRY[shared.loop]


async def close_shared_clients() -> None:
    """Close this loop's shared stacks now (``asyncio.run`` does it on its own at exit).

    For loops not run by ``asyncio.run`` (``run_until_complete`` then ``close``), which do not
    cancel leftover tasks: call this before closing the loop.
    """
    loop = asyncio.get_running_loop()
    with _LOCK:
        shared = list((_REGISTRY.get(loop) or {}).values())
    for one in shared:
        await one.close()


# -- the client ----------------------------------------------------------------------------


class DirectusClient:
    """storybench's Directus client, served through this library's cache and mirror.

    Construction is cheap (no connection, no I/O beyond reading two environment variables):
    the shared stack is found or built on the first call in each event loop.
    """

    def __init__(
        self, base_url: str | None = None, token: str | None = None, timeout: float = 60
    ) -> None:
        self.base_url = base_url or os.getenv("DIRECTUS_URL")
        self.token = token or os.getenv("DIRECTUS_TOKEN")
        self.timeout = timeout
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise DirectusConfigurationError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        if not self.base_url:
            raise DirectusConfigurationError("Directus URL not provided")
        if not self.token:
            raise DirectusConfigurationError("Directus token not provided")
        self.base_url = self.base_url.rstrip("/")
        self._key: _Key = (self.base_url, self.token)

    def __repr__(self) -> str:
        return f"DirectusClient(base_url={self.base_url!r}, token=***)"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to close: the shared stack belongs to the event loop, not to one client."""

    # -- the shared stack ------------------------------------------------------------------

    def _ready_shared(self) -> _Shared | None:
        """This loop's stack for this URL and token, when it is up; no await, no I/O."""
        global _hot
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        hot = _hot
        if hot is not None and hot[0]() is loop and hot[1] == self._key and hot[2].usable:
            return hot[2]
        entries = _REGISTRY.get(loop)
        shared = entries.get(self._key) if entries is not None else None
        if shared is None or not shared.usable:
            return None
        _hot = (weakref.ref(loop), self._key, shared)
        return shared

    async def _shared(self) -> _Shared:
        shared = self._ready_shared()
        if shared is not None:
            return shared
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise DirectusConfigurationError(
                "the drop-in DirectusClient runs on asyncio; under another event loop use "
                "build_repository() directly"
            ) from None
        with _LOCK:
            entries = _REGISTRY.get(loop)
            if entries is None:
                entries = _REGISTRY[loop] = {}
            shared = entries.get(self._key)
            if shared is None or (shared.ready.is_set() and not shared.usable):
                try:
                    shared = _Shared(loop, self._key, self._settings())
                except (StorybenchPromptsError, ValidationError) as exc:
                    if not entries:
                        del _REGISTRY[loop]
                    raise _client_error(exc) from exc
                entries[self._key] = shared
        await shared.ready.wait()
        if shared.error is not None:
            raise _client_error(shared.error) from shared.error
        return shared

    def _settings(self) -> Settings:
        """Settings as ``build_repository()`` reads them, with this client's URL, token, timeout.

        Read once per event loop and (URL, token): the first client's timeout is the one used.
        """
        overrides: dict[str, Any] = {
            "directus_url": self.base_url,
            "directus_token": self.token,
        }
        if self.timeout is not None:
            overrides["directus_read_timeout"] = float(self.timeout)
        return Settings(**overrides)

    # -- storybench's methods: prompt sets -------------------------------------------------

    async def fetch_prompts(
        self, version_number: int | None = None
    ) -> StorybenchPromptsStructure | None:
        """The given published version (default: the latest) in storybench's flat format, or
        None when Directus has no such published version."""
        shared = self._ready_shared() or await self._shared()
        try:
            if version_number is None:
                prompt_set = await shared.prompts.latest()
            else:
                prompt_set = await shared.prompts.get(_version_number(version_number))
        except PromptSetNotFoundError:
            return None
        except DirectusClientError:
            raise
        except (StorybenchPromptsError, RuntimeError) as exc:
            raise _client_error(exc) from exc
        if not shared.accepted:
            _refuse_if_rejected(shared)
        # The memo's own first check, inlined: this is the call storybench makes most.
        hit = shared.prompt_structures.by_slot.get(version_number)
        if hit is not None and hit[0] is prompt_set:
            return hit[1]
        return shared.prompt_structures(version_number, prompt_set)

    async def get_latest_published_version(self) -> DirectusPromptSetVersion | None:
        """The latest published version in storybench's model, or None when there is none."""
        return await self._version(None)

    async def get_version_by_number(self, version_number: int) -> DirectusPromptSetVersion | None:
        """This published version in storybench's model, or None when it is not published."""
        return await self._version(_version_number(version_number))

    async def _version(self, version_number: int | None) -> DirectusPromptSetVersion | None:
        shared = self._ready_shared() or await self._shared()
        prompt_set = await _served_or_none(shared, shared.prompts, version_number)
        if prompt_set is None:
            return None
        return shared.prompt_versions(version_number, prompt_set)

    async def convert_to_storybench_format(
        self, version: DirectusPromptSetVersion | Mapping[str, Any] | BaseModel
    ) -> StorybenchPromptsStructure:
        """A version (this client's model, storybench's, or a raw Directus item) to the flat
        prompt set, by the library's content rules."""
        if (
            isinstance(version, DirectusPromptSetVersion)
            and version._served is not None
            and _linked(version)
        ):
            if version._structure is None:
                version._structure = _prompts_structure(version._served)
            return version._structure
        try:
            prompt_set = PROMPT_SETS.convert(_raw(version))
        except StorybenchPromptsError as exc:
            raise _client_error(exc) from exc
        return _prompts_structure(prompt_set)

    async def list_published_versions(self) -> list[DirectusPromptSetVersion]:
        """Every published version, newest first (without sequences, as storybench lists them).

        From Directus; from the mirror when Directus cannot answer.
        """
        shared = self._ready_shared() or await self._shared()
        try:
            infos = await shared.prompts.versions()
            if not shared.accepted:
                _refuse_if_rejected(shared)
        except DirectusClientError:
            raise
        except (StorybenchPromptsError, RuntimeError) as exc:
            raise _client_error(exc) from exc
        ordered = sorted(infos, key=lambda info: info.version, reverse=True)
        return [_listed_version(info) for info in ordered]

    # -- storybench's methods: evaluation criteria ------------------------------------------

    async def get_latest_published_evaluation_version(self) -> DirectusEvaluationVersion | None:
        """The latest published evaluation version in storybench's model, or None."""
        return await self._evaluation_version(None)

    async def get_evaluation_version_by_number(
        self, version_number: int
    ) -> DirectusEvaluationVersion | None:
        """This published evaluation version in storybench's model, or None."""
        return await self._evaluation_version(_version_number(version_number))

    async def _evaluation_version(
        self, version_number: int | None
    ) -> DirectusEvaluationVersion | None:
        shared = self._ready_shared() or await self._shared()
        evaluation_set = await _served_or_none(shared, shared.evaluations, version_number)
        if evaluation_set is None:
            return None
        return shared.evaluation_versions(version_number, evaluation_set)

    async def convert_to_storybench_evaluation_format(
        self, version: DirectusEvaluationVersion | Mapping[str, Any] | BaseModel
    ) -> StorybenchEvaluationStructure:
        """An evaluation version (this client's model, storybench's, or a raw Directus item)
        to storybench's evaluation structure, by the library's content rules."""
        if (
            isinstance(version, DirectusEvaluationVersion)
            and version._served is not None
            and _linked(version)
        ):
            if version._structure is None:
                version._structure = _evaluation_structure(version._served)
            return version._structure
        try:
            evaluation_set = EVALUATION_SETS.convert(_raw(version))
        except StorybenchPromptsError as exc:
            raise _client_error(exc) from exc
        return _evaluation_structure(evaluation_set)

    # -- storybench's methods: Directus itself ---------------------------------------------

    async def test_connection(self) -> bool:
        """True when Directus answers and the token may read prompt sets; False otherwise.

        Always asks Directus itself (never the cache), and never raises for a rejected token,
        a server error or a network failure.
        """
        try:
            shared = await self._shared()
            return await shared.source.test_connection()
        except Exception as exc:  # storybench's contract: a bool, whatever went wrong
            logger.info("Directus connection test failed: %s", type(exc).__name__)
            return False

    async def _make_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        """storybench's raw request: ``endpoint`` relative to the base URL, the decoded JSON.

        Goes straight to Directus (never the cache) over the shared connection pool. Accepts
        ``params=`` and ``json=``; raises storybench's error classes (401
        ``DirectusAuthenticationError``, 404 ``DirectusNotFoundError``, 5xx
        ``DirectusServerError``, anything else a ``DirectusClientError``).
        """
        params = kwargs.pop("params", None)
        body = kwargs.pop("json", None)
        if kwargs:
            raise TypeError(
                f"_make_request() got unsupported arguments {sorted(kwargs)}; "
                "params= and json= are supported"
            )
        shared = await self._shared()
        try:
            return await shared.source.request_json(method, endpoint, params=params, json=body)
        except DirectusClientError:
            raise
        except StorybenchPromptsError as exc:
            raise _client_error(exc) from exc


async def _served_or_none(
    shared: _Shared, repository: Any, version_number: int | None
) -> Any | None:
    """The set ``repository`` serves (latest, or this version), None when Directus has no
    such published version; every failure as a DirectusClientError."""
    try:
        if version_number is None:
            content = await repository.latest()
        else:
            content = await repository.get(version_number)
    except PromptSetNotFoundError:
        return None
    except DirectusClientError:
        raise
    except (StorybenchPromptsError, RuntimeError) as exc:
        raise _client_error(exc) from exc
    if not shared.accepted:
        _refuse_if_rejected(shared)
    return content


def _version_number(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    # Never round 2.7 to 2 or read True as 1: that would serve another version.
    raise DirectusRequestError(f"a version number must be an integer, got {value!r}")
