"""The one place the stack is built from settings.

``build_stack()`` composes Directus, the cache, and the MongoDB mirror when ``MONGODB_URI`` is
set, else the file mirror, once per content kind (prompt sets, evaluation sets), sharing one
Directus client, one MongoDB client, one outage gate and one realtime channel.
``build_repository()`` is its prompt-set repository, with the other kind as ``.evaluations``.
Offline (``STORYBENCH_PROMPTS_OFFLINE=true``) the mirror is the origin: no Directus client, no
realtime channel, no URL or token needed.

The Directus and MongoDB modules are imported only when a stack that uses them is built, so a
mirror-only process never loads an HTTP client or a database driver it does not need.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ._exceptions import ConfigurationError
from ._settings import Settings
from .content.kinds import EVALUATION_SETS, PROMPT_SETS, ContentKind
from .content.models import EvaluationSet, PromptSet, VersionedContent
from .mirrors.base import PromptMirror
from .mirrors.file import FileMirror

if TYPE_CHECKING:
    import httpx

    from ._events import ContentChanged, Hook, OriginStatus
    from .cache.engine import CachingRepository
    from .cache.listeners import Listener
    from .cache.stack import Stack
    from .sources.directus import DirectusSource

__all__ = ["DirectusStack", "build_mirror", "build_repository", "build_source", "build_stack"]

C = TypeVar("C", bound=VersionedContent)


def build_source(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> DirectusSource[PromptSet]:
    """The Directus source for prompt sets (``.for_kind(EVALUATION_SETS)`` for the other).

    ``transport``: an httpx transport to send the requests through (counting, tests)."""
    from .sources.directus import DirectusSource, DirectusTimeouts
    from .sources.retry import RetryPolicy

    settings = settings or Settings()
    if settings.offline:
        raise ConfigurationError(
            "offline (STORYBENCH_PROMPTS_OFFLINE=true): nothing is read from Directus; "
            "unset it to reach Directus"
        )
    if not settings.directus_url:
        raise ConfigurationError("Directus URL missing: set DIRECTUS_URL")
    if settings.directus_token is None:
        raise ConfigurationError("Directus token missing: set DIRECTUS_TOKEN")
    return DirectusSource(
        settings.directus_url,
        settings.directus_token,
        kind=PROMPT_SETS,
        timeouts=DirectusTimeouts(
            connect=settings.directus_connect_timeout, read=settings.directus_read_timeout
        ),
        retry=RetryPolicy(
            max_attempts=settings.directus_max_attempts, deadline=settings.directus_retry_deadline
        ),
        max_response_bytes=settings.directus_max_response_bytes,
        transport=transport,
    )


def build_mirror(settings: Settings | None, kind: ContentKind[C]) -> PromptMirror[C]:
    """The MongoDB mirror when ``MONGODB_URI`` is set, else the file mirror (for ``kind``)."""
    settings = settings or Settings()
    if settings.mongodb_uri is not None and settings.mongodb_uri.get_secret_value():
        from .mirrors.mongo import MongoMirror

        mongo: PromptMirror[C] = MongoMirror(
            settings.mongodb_uri.get_secret_value(),
            kind=kind,
            database_name=settings.mongodb_database,
            server_selection_timeout=settings.mongodb_server_selection_timeout,
            socket_timeout=settings.mongodb_socket_timeout,
        )
        return mongo
    return FileMirror(settings.resolved_mirror_dir(), kind=kind)


@dataclass(frozen=True, slots=True)
class DirectusStack:
    """Both kinds over one Directus, as ``build_stack()`` composes them.

    ``async with`` enters the shared stack (entering ``prompts`` does the same); ``source`` is
    the Directus source, for what goes to Directus itself (a connection test, a raw request);
    None offline, where nothing goes to Directus.
    """

    stack: Stack
    source: DirectusSource[PromptSet] | None
    prompts: CachingRepository[PromptSet]
    evaluations: CachingRepository[EvaluationSet]

    def status(self) -> OriginStatus:
        return self.stack.status()

    def on_status_change(self, callback: Listener[OriginStatus]) -> Callable[[], None]:
        """Call ``callback`` (plain or async) with the new ``OriginStatus`` once per change of
        Directus's state. Returns the unsubscribe."""
        return self.stack.on_status_change(callback)

    def on_content_change(self, callback: Listener[ContentChanged]) -> Callable[[], None]:
        """Call ``callback`` (plain or async) with each ``ContentChanged`` of either kind,
        once per change. Returns the unsubscribe."""
        return self.stack.on_content_change(callback)

    def repository(self, kind: ContentKind[C]) -> CachingRepository[C]:
        """The repository of ``kind`` (by name: kinds are data)."""
        repositories: dict[str, CachingRepository[Any]] = {
            PROMPT_SETS.name: self.prompts,
            EVALUATION_SETS.name: self.evaluations,
        }
        try:
            found: CachingRepository[C] = repositories[kind.name]
        except KeyError:
            raise ConfigurationError(f"this stack serves no {kind.noun}s") from None
        return found

    async def __aenter__(self) -> Self:
        await self.stack.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stack.__aexit__(exc_type, exc, tb)


def _hooks(settings: Settings, hooks: Iterable[Hook]) -> list[Hook]:
    """The caller's hooks, and OpenTelemetry's when ``STORYBENCH_PROMPTS_OTEL`` asks for it
    (``off`` imports nothing of it)."""
    installed = list(hooks)
    if settings.otel != "off":
        from .observability.otel import otel_hook

        otel = otel_hook(settings.otel)
        if otel is not None:
            installed.append(otel)
    return installed


def build_stack(settings: Settings | None = None, *, hooks: Iterable[Hook] = ()) -> DirectusStack:
    """Directus, cache and mirror for both kinds, sharing one gate, channel and lifecycle.

    ``hooks`` receive every event of both kinds (see ``_events``), beside ``Stats`` and, when
    the setting is on, OpenTelemetry's."""
    from .cache.engine import CachingRepository
    from .cache.stack import Stack

    settings = settings or Settings()
    policy = settings.cache_policy()
    if settings.offline:
        return _offline_stack(settings, hooks)
    # Builds no connection yet, so nothing leaks if building the source fails next.
    mirror = build_mirror(settings, PROMPT_SETS)
    source = build_source(settings)
    stack = Stack.for_origin(
        source.name,
        policy=policy,
        clock=time.monotonic,
        rand=random.random,
        hooks=_hooks(settings, hooks),
    )
    evaluations: CachingRepository[EvaluationSet] = CachingRepository(
        source.for_kind(EVALUATION_SETS),
        _sibling(mirror, EVALUATION_SETS),
        policy=policy,
        kind=EVALUATION_SETS,
        stack=stack,
    )
    prompts: CachingRepository[PromptSet] = CachingRepository(
        source, mirror, policy=policy, kind=PROMPT_SETS, stack=stack
    )
    prompts.evaluations = evaluations
    if settings.realtime != "off" and settings.directus_token is not None:
        from .sources.realtime import RealtimeChannel

        stack.attach_channel(
            RealtimeChannel(
                source.url,
                settings.directus_token,
                [*PROMPT_SETS.related_collections, *EVALUATION_SETS.related_collections],
                # Each event names its rows: only the versions they touch are refetched.
                on_rows=stack.content_changed,
                fields={
                    **PROMPT_SETS.subscription_fields(),
                    **EVALUATION_SETS.subscription_fields(),
                },
                # After every (re)connect: changes made while it was down are not replayed.
                on_connected=stack.connected,
                on_state=stack.channel_changed,
                mode=settings.realtime,
            )
        )
    return DirectusStack(stack, source, prompts, evaluations)


def _offline_stack(settings: Settings, hooks: Iterable[Hook]) -> DirectusStack:
    """The mirror alone, as origin and mirror of both kinds: no network, no channel."""
    from .cache.engine import CachingRepository
    from .cache.stack import Stack
    from .mirrors.offline import OfflineOrigin

    policy = settings.cache_policy()
    prompts_origin = OfflineOrigin(build_mirror(settings, PROMPT_SETS))
    evaluations_origin = prompts_origin.for_kind(EVALUATION_SETS)
    stack = Stack.for_origin(
        prompts_origin.name,
        policy=policy,
        clock=time.monotonic,
        rand=random.random,
        hooks=_hooks(settings, hooks),
    )
    evaluations: CachingRepository[EvaluationSet] = CachingRepository(
        evaluations_origin, evaluations_origin, policy=policy, kind=EVALUATION_SETS, stack=stack
    )
    prompts: CachingRepository[PromptSet] = CachingRepository(
        prompts_origin, prompts_origin, policy=policy, kind=PROMPT_SETS, stack=stack
    )
    prompts.evaluations = evaluations
    return DirectusStack(stack, None, prompts, evaluations)


def build_repository(
    settings: Settings | None = None, *, hooks: Iterable[Hook] = ()
) -> CachingRepository[PromptSet]:
    """The whole stack from settings: Directus, cache and mirror for prompt sets, and the
    same for evaluation sets as ``.evaluations``; ``hooks`` receive every event of both.

    Use it as ``async with build_repository() as prompts: await prompts.latest()``.
    """
    return build_stack(settings, hooks=hooks).prompts


def _sibling(mirror: PromptMirror[Any], kind: ContentKind[Any]) -> PromptMirror[Any]:
    sibling: PromptMirror[Any] = mirror.for_kind(kind)  # type: ignore[attr-defined]
    return sibling
