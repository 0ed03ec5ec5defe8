"""storybench's ``DirectusClient``, served by this library: the one-line migration.

``from storybench_prompts import DirectusClient`` in place of storybench's import keeps every
call site as it is: the constructor ``(base_url=None, token=None, timeout=60)``, the methods,
the models' field names, ``None`` for a version that does not exist, and errors that are all
``DirectusClientError``. Behind it, every client of one event loop with the same URL and token
shares one stack (``registry``), so a fresh client at each call site costs nothing, and a cold
or down Directus costs ``fallback_after``.

A compatibility shell over the library, not a second engine: content goes through the same
Directus source, content rules and cache as :class:`PromptSet`; this package only reshapes
what they serve into storybench's models (``shapes``) and its error conventions (``errors``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..._closing import Closeable
from ..._exceptions import (
    DirectusClientError,
    DirectusConfigurationError,
    DirectusRequestError,
    PromptSetNotFoundError,
    StorybenchPromptsError,
)
from ..._logs import get_logger
from ..._redact import redact_uri
from ..._settings import Settings
from ...content.kinds import EVALUATION_SETS, PROMPT_SETS, ContentKind
from ...content.models import VersionedContent
from ...sources.base import PromptRepository
from . import registry
from .errors import client_error
from .models import (
    DirectusEvaluationVersion,
    DirectusPromptSetVersion,
    StorybenchEvaluationStructure,
    StorybenchPromptsStructure,
    linked,
)
from .registry import SharedStack
from .shapes import evaluation_structure, listed_version, prompts_structure, raw_item

if TYPE_CHECKING:
    from ..._compose import DirectusStack
    from ..._events import ContentChanged, OriginStatus
    from ...cache.listeners import Listener

__all__ = ["DirectusClient"]

logger = get_logger("storybench_prompts.dropin")

C = TypeVar("C", bound=VersionedContent)


class DirectusClient(Closeable):
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
        # Offline (STORYBENCH_PROMPTS_OFFLINE), the mirror answers alone: no URL or token.
        # Offline matters here only without a URL or token (to share the offline stack); with
        # both, the stack's own settings say it. (A client is built at every call site.)
        self.offline = not (self.base_url and self.token) and _offline_requested()
        if not self.offline:
            if not self.base_url:
                raise DirectusConfigurationError("Directus URL not provided")
            if not self.token:
                raise DirectusConfigurationError("Directus token not provided")
        self.base_url = self.base_url.rstrip("/") if self.base_url else None
        self._key: registry.Key = (
            ("offline", "") if self.offline else (self.base_url or "", self.token or "")
        )

    def __repr__(self) -> str:
        if self.offline:
            return "DirectusClient(offline)"
        shown = redact_uri(self.base_url) if self.base_url else None
        return f"DirectusClient(base_url={shown!r}, token=***)"

    async def aclose(self) -> None:
        """Nothing to close: the shared stack belongs to the event loop, not to one client."""

    # -- the shared stack ------------------------------------------------------------------

    async def _shared(self) -> SharedStack:
        return await registry.obtain(self._key, self._settings)

    def _settings(self) -> Settings:
        """Settings as ``build_repository()`` reads them, with this client's URL, token, timeout.

        Read once per event loop and (URL, token): the first client's timeout is the one used.
        """
        overrides: dict[str, Any] = {}
        if self.base_url:
            overrides["directus_url"] = self.base_url
        if self.token:
            overrides["directus_token"] = self.token
        if self.offline:
            overrides["offline"] = True
        if self.timeout is not None:
            overrides["directus_read_timeout"] = float(self.timeout)
        return Settings(**overrides)

    # -- listeners (ours, not storybench's) ---------------------------------------------

    async def on_status_change(self, callback: Listener[OriginStatus]) -> Callable[[], None]:
        """Call ``callback`` (plain or async) with the new ``OriginStatus`` once per change of
        Directus's state, for every client of this loop and (URL, token). Returns the
        unsubscribe."""
        return (await self._listened()).on_status_change(callback)

    async def on_content_change(self, callback: Listener[ContentChanged]) -> Callable[[], None]:
        """Call ``callback`` (plain or async) with each ``ContentChanged`` (kind, version, old
        and new ``config_hash``, via) of the shared stack, once per change. Returns the
        unsubscribe."""
        return (await self._listened()).on_content_change(callback)

    async def _listened(self) -> DirectusStack:
        shared = registry.ready(self._key) or await self._shared()
        if shared.stack is None:
            raise DirectusConfigurationError(
                "listeners need the shared cache: STORYBENCH_PROMPTS_SHARED_CACHE is false, so "
                "every call goes to Directus and nothing observes it",
                setting="STORYBENCH_PROMPTS_SHARED_CACHE",
            )
        return shared.stack

    # -- storybench's methods: prompt sets -------------------------------------------------

    async def fetch_prompts(
        self, version_number: int | None = None
    ) -> StorybenchPromptsStructure | None:
        """The given published version (default: the latest) in storybench's flat format, or
        None when Directus has no such published version."""
        shared = registry.ready(self._key) or await self._shared()
        try:
            if version_number is None:
                prompt_set = await _latest(shared, PROMPT_SETS, shared.prompts)
            else:
                prompt_set = await shared.prompts.get(_version_number(version_number))
        except PromptSetNotFoundError:
            return None
        except DirectusClientError:
            raise
        except (StorybenchPromptsError, RuntimeError) as exc:
            raise client_error(exc) from exc
        if not shared.accepted:
            shared.refuse_if_rejected()
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
        shared = registry.ready(self._key) or await self._shared()
        prompt_set = await _served_or_none(shared, PROMPT_SETS, shared.prompts, version_number)
        if prompt_set is None:
            return None
        return shared.prompt_versions(version_number, prompt_set)

    async def convert_to_storybench_format(
        self, version: DirectusPromptSetVersion | Mapping[str, Any] | BaseModel
    ) -> StorybenchPromptsStructure:
        """A version (this client's model, storybench's, or a raw Directus item) to the flat
        prompt set, by the library's content rules."""
        structure: StorybenchPromptsStructure = _structure_of(
            version, DirectusPromptSetVersion, PROMPT_SETS, prompts_structure
        )
        return structure

    async def list_published_versions(self) -> list[DirectusPromptSetVersion]:
        """Every published version, newest first (without sequences, as storybench lists them).

        From Directus; from the mirror when Directus cannot answer.
        """
        shared = registry.ready(self._key) or await self._shared()
        try:
            infos = await shared.prompts.versions()
            if not shared.accepted:
                shared.refuse_if_rejected()
        except DirectusClientError:
            raise
        except (StorybenchPromptsError, RuntimeError) as exc:
            raise client_error(exc) from exc
        ordered = sorted(infos, key=lambda info: info.version, reverse=True)
        return [listed_version(info) for info in ordered]

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
        shared = registry.ready(self._key) or await self._shared()
        evaluation_set = await _served_or_none(
            shared, EVALUATION_SETS, shared.evaluations, version_number
        )
        if evaluation_set is None:
            return None
        return shared.evaluation_versions(version_number, evaluation_set)

    async def convert_to_storybench_evaluation_format(
        self, version: DirectusEvaluationVersion | Mapping[str, Any] | BaseModel
    ) -> StorybenchEvaluationStructure:
        """An evaluation version (this client's model, storybench's, or a raw Directus item)
        to storybench's evaluation structure, by the library's content rules."""
        structure: StorybenchEvaluationStructure = _structure_of(
            version, DirectusEvaluationVersion, EVALUATION_SETS, evaluation_structure
        )
        return structure

    # -- storybench's methods: Directus itself ---------------------------------------------

    async def test_connection(self) -> bool:
        """True when Directus answers and the token may read prompt sets; False otherwise.

        Always asks Directus itself (never the cache), and never raises for a rejected token,
        a server error or a network failure.
        """
        try:
            shared = await self._shared()
            if shared.source is None:
                logger.info("offline: the Directus connection test is not made")
                return False
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
        if shared.source is None:
            raise DirectusConfigurationError(
                f"offline (STORYBENCH_PROMPTS_OFFLINE=true): no request is sent to Directus "
                f"({method} {endpoint})"
            )
        try:
            return await shared.source.request_json(method, endpoint, params=params, json=body)
        except DirectusClientError:
            raise
        except StorybenchPromptsError as exc:
            raise client_error(exc) from exc


async def _latest(shared: SharedStack, kind: ContentKind[C], repository: PromptRepository[C]) -> C:
    """The latest set, or the one the lock names (``STORYBENCH_PROMPTS_LOCK``)."""
    if shared.lock is not None:
        locked: C | None = await shared.locked(kind, repository)
        if locked is not None:
            return locked
    return await repository.latest()


def _offline_requested() -> bool:
    """Whether ``STORYBENCH_PROMPTS_OFFLINE`` is on, wherever settings are read from (the
    environment, ``.env``)."""
    try:
        return Settings().offline
    except ValidationError as exc:
        raise client_error(exc) from exc


async def _served_or_none(
    shared: SharedStack, kind: ContentKind[Any], repository: Any, version_number: int | None
) -> Any | None:
    """The set ``repository`` serves (latest, or this version), None when Directus has no
    such published version; every failure as a DirectusClientError."""
    try:
        if version_number is None:
            content = await _latest(shared, kind, repository)
        else:
            content = await repository.get(version_number)
    except PromptSetNotFoundError:
        return None
    except DirectusClientError:
        raise
    except (StorybenchPromptsError, RuntimeError) as exc:
        raise client_error(exc) from exc
    if not shared.accepted:
        shared.refuse_if_rejected()
    return content


def _version_number(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    # Never round 2.7 to 2 or read True as 1: that would serve another version.
    raise DirectusRequestError(f"a version number must be an integer, got {value!r}")


def _structure_of(
    version: Any, model: type[Any], kind: ContentKind[Any], build: Callable[[Any], Any]
) -> Any:
    """storybench's structure of a version: made once from the set a served model holds (and
    kept on it), else converted from the version's fields by the kind's content rules."""
    if isinstance(version, model) and version._served is not None and linked(version):
        if version._structure is None:
            version._structure = build(version._served)
        return version._structure
    try:
        content = kind.convert(raw_item(version))
    except StorybenchPromptsError as exc:
        raise client_error(exc) from exc
    return build(content)
