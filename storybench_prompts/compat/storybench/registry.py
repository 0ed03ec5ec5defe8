"""One shared stack per event loop and (URL, token), hosted by a task of its own.

Every drop-in ``DirectusClient`` of one loop with the same URL and token uses one stack
(``build_stack``: cache, single-flight, the hedge to the mirror, stale-if-error), so
storybench's habit of building a fresh client at each call site costs one Directus request
per TTL. The stack is entered (``async with``) by a host task on the running loop, which waits
until it is cancelled: ``asyncio.run`` cancels every task left when its main coroutine
returns, so the host leaves the ``async with`` (mirror writes land, connections close) before
the loop closes. The registry is keyed weakly by loop, and a host removes its own entry when
it ends, so a second ``asyncio.run`` starts afresh.

The lock guards only the registry's dictionaries, never a build or a settings read, and a
forked child gets a new lock and an empty registry (the parent's loops and stacks are not its
own), so a fork while another thread holds the lock cannot hang the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from ..._compose import build_source, build_stack
from ..._events import OriginStatus
from ..._exceptions import (
    DirectusAuthenticationError,
    DirectusConfigurationError,
    DirectusForbiddenError,
    StorybenchPromptsError,
)
from ..._forking import forget_imports_of_other_threads_after_fork
from ..._logs import get_logger
from ..._settings import Settings
from ...content.kinds import EVALUATION_SETS, ContentKind
from ...content.models import EvaluationSet, PromptSet, VersionedContent
from ...ops.lock import Lock
from ...ops.locked import resolve_locked
from ...sources.base import PromptRepository
from .errors import client_error
from .memo import Memo
from .models import DirectusEvaluationVersion, DirectusPromptSetVersion, StorybenchPromptsStructure
from .shapes import evaluation_version, prompts_structure, prompts_version

if TYPE_CHECKING:
    from ..._compose import DirectusStack
    from ...sources.directus import DirectusSource

__all__ = ["Key", "SharedStack", "close_shared_clients", "obtain", "ready"]

logger = get_logger("storybench_prompts.dropin")

Key = tuple[str, str]

C = TypeVar("C", bound=VersionedContent)


class SharedStack:
    """One loop's stack for one (URL, token): the repositories (or plain sources) and a host."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: Key, settings: Settings) -> None:
        self.key = key
        self.loop = loop
        self.offline = settings.offline
        self.lock: Lock | None = Lock.load(settings.lock) if settings.lock is not None else None
        """The lockfile whose sets are served as the latest (``STORYBENCH_PROMPTS_LOCK``)."""
        self._locked: dict[str, VersionedContent] = {}
        # Offline, or with a lock, the stack is needed whatever SHARED_CACHE says: the mirror
        # is where the content is (or may be).
        self.cached = settings.shared_cache or self.offline or self.lock is not None
        self.source: DirectusSource[PromptSet] | None
        self.prompts: PromptRepository[PromptSet]
        self.evaluations: PromptRepository[EvaluationSet]
        self._status: Callable[[], OriginStatus] | None = None
        self.stack: DirectusStack | None = None
        """The composed stack (None when every call goes to Directus, uncached)."""
        if self.cached:
            stack = build_stack(settings)
            self.stack = stack
            self.source = stack.source
            self.prompts = stack.prompts
            self.evaluations = stack.evaluations
            self._status = stack.status
            self._resource: Any = stack
        else:
            source = build_source(settings)
            self.source = source
            self.prompts = source
            self.evaluations = source.for_kind(EVALUATION_SETS)
            self._resource = source  # closes the connections both kinds share
        self.prompt_structures: Memo[PromptSet, StorybenchPromptsStructure] = Memo(
            prompts_structure
        )
        self.prompt_versions: Memo[PromptSet, DirectusPromptSetVersion] = Memo(prompts_version)
        self.evaluation_versions: Memo[EvaluationSet, DirectusEvaluationVersion] = Memo(
            evaluation_version
        )
        self.accepted = False
        """Whether Directus has answered this (URL, token) here (:meth:`refuse_if_rejected`)."""
        self.ready = asyncio.Event()
        self.error: BaseException | None = None
        self.usable = False
        url = key[0]
        self.task = loop.create_task(self._host(), name=f"storybench-prompts shared cache {url}")

    async def locked(self, kind: ContentKind[C], repository: PromptRepository[C]) -> C | None:
        """The set of ``kind`` the lock names (None: the lock names none), found once per
        stack and then served as is; :class:`LockedContentNotFoundError` when it is nowhere."""
        locked_set = self.lock.set_of(kind) if self.lock is not None else None
        if locked_set is None:
            return None
        found = self._locked.get(kind.name)
        if found is None:
            resolved = await resolve_locked(repository, locked_set, kind=kind)
            found = self._locked.setdefault(kind.name, resolved.content)
            logger.info(
                "serving the locked %s v%d (%s) from %s",
                kind.noun,
                locked_set.version,
                locked_set.config_hash,
                resolved.found_in,
            )
        return found  # type: ignore[return-value]

    def refuse_if_rejected(self) -> None:
        """A token Directus has rejected, and never accepted, gets no copy fetched by another.

        The mirror is shared by every token, so without this a wrong token would be served
        what the right one mirrored; storybench's own client (and its tests) raise. Once
        Directus has accepted this (URL, token) in this loop, the cache's outage rules apply
        as for any failure: an expired token keeps the benchmark running on the copies it had.
        """
        if self._status is None:
            self.accepted = True
            return
        status = self._status()
        if status.last_success_at is not None:
            self.accepted = True
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


_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, SharedStack]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()
# The stack the last warm call used: the next call from the same loop with the same URL and
# token finds it with one comparison, without building a weak reference (a WeakKeyDictionary
# lookup builds one). One tuple, replaced whole, so threads never see half of it. It holds
# the stack strongly, so _forget clears it when the stack ends.
_hot: tuple[weakref.ref[asyncio.AbstractEventLoop], Key, SharedStack] | None = None


# What building a stack and its first fetch import. A thread importing one of them when
# another forks would leave the child waiting on that module's import lock for ever.
_STACK_MODULES = (
    "anyio._backends._asyncio",
    "anyio.to_thread",
    "httpx",
    "httpx_ws",
    "storybench_prompts._compose",
    "storybench_prompts.cache.engine",
    "storybench_prompts.mirrors.file",
    "storybench_prompts.observability.otel",
    "storybench_prompts.sources.directus",
    "storybench_prompts.sources.realtime",
)
_OTEL_MODULES = ("opentelemetry.metrics", "opentelemetry.trace")
"""Imported before a fork only once OpenTelemetry is in use (``off`` imports none of it)."""


def _before_fork() -> None:
    # Waits for an import under way in another thread to finish, then imports the rest, so
    # the child finds them whole; then holds the registry lock across the fork.
    # Nothing here may raise before the lock is taken: a handler that fails is skipped, and
    # the parent's handler would then release a lock it never took.
    otel = _OTEL_MODULES if "opentelemetry" in sys.modules else ()
    for name in (*_STACK_MODULES, *otel):
        with contextlib.suppress(Exception):  # ImportError, or a deadlock importlib saw
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from ...sources.http import shared_ssl_context

        shared_ssl_context()  # made here once, never again while another thread may fork
    _LOCK.acquire()


def _after_fork_in_parent() -> None:
    _LOCK.release()


def _after_fork_in_child() -> None:
    # The parent's loops, hosts and lock holders do not exist here.
    global _LOCK, _hot
    _LOCK = threading.Lock()
    _hot = None
    _REGISTRY.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
forget_imports_of_other_threads_after_fork()


def ready(key: Key) -> SharedStack | None:
    """This loop's stack for ``key``, when it is up; no await, no I/O (the warm call)."""
    global _hot
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    hot = _hot
    if hot is not None and hot[0]() is loop and hot[1] == key and hot[2].usable:
        return hot[2]
    entries = _REGISTRY.get(loop)
    shared = entries.get(key) if entries is not None else None
    if shared is None or not shared.usable:
        return None
    _hot = (weakref.ref(loop), key, shared)
    return shared


async def obtain(key: Key, settings: Callable[[], Settings]) -> SharedStack:
    """This loop's stack for ``key``, built (from ``settings()``) and opened when needed."""
    shared = ready(key)
    if shared is not None:
        return shared
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise DirectusConfigurationError(
            "the drop-in DirectusClient runs on asyncio; under another event loop use "
            "build_repository() directly"
        ) from None
    shared = _registered(loop, key)
    if shared is None:
        # Built outside the lock: reading settings and building may take a while, and a
        # thread that forks meanwhile must not leave the child a held lock.
        try:
            candidate = SharedStack(loop, key, settings())
        except (StorybenchPromptsError, ValidationError) as exc:
            raise client_error(exc) from exc
        shared = _register(loop, key, candidate)
        if shared is not candidate:
            await candidate.close()  # another caller of this loop registered one first
    await shared.ready.wait()
    if shared.error is not None:
        raise client_error(shared.error) from shared.error
    return shared


def _registered(loop: asyncio.AbstractEventLoop, key: Key) -> SharedStack | None:
    with _LOCK:
        shared = (_REGISTRY.get(loop) or {}).get(key)
    if shared is None or (shared.ready.is_set() and not shared.usable):
        return None
    return shared


def _register(loop: asyncio.AbstractEventLoop, key: Key, candidate: SharedStack) -> SharedStack:
    with _LOCK:
        entries = _REGISTRY.setdefault(loop, {})
        current = entries.get(key)
        if current is not None and not (current.ready.is_set() and not current.usable):
            return current
        entries[key] = candidate
        return candidate


def _forget(shared: SharedStack) -> None:
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
