"""A blocking face on the async repository, for scripts and notebooks.

The library is async. Wrapping each call in ``asyncio.run`` throws the cache away with the
loop and fails inside a running loop (Jupyter's). :func:`blocking` keeps one event loop on a
background daemon thread, enters the async repository there once, and runs every call on that
loop: the cache, background refreshes, the realtime channel and mirror writes live between
calls, and calls work from plain scripts, from many threads at once and inside a running loop.

    import storybench_prompts

    with storybench_prompts.blocking() as prompts:  # settings from the environment
        prompt_set = prompts.latest()
        criteria = prompts.evaluations.latest()

Errors are the async API's own. Ctrl-C cancels the call in progress. Leaving the ``with`` (or
``close()``, or interpreter exit) leaves the async repository cleanly, so mirror writes in
progress land. A child made by ``os.fork()`` builds its own loop and repository on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._forking import forget_imports_of_other_threads_after_fork
from ._logs import get_logger

if TYPE_CHECKING:
    from ._events import OriginStatus
    from ._settings import Settings
    from .cache.engine import CachingRepository
    from .cache.stats import Stats
    from .content.models import EvaluationSet, PromptSet, VersionedContent, VersionInfo
    from .ops.sync import SyncResult

__all__ = ["BlockingRepository", "blocking"]

logger = get_logger(__name__)

C = TypeVar("C", bound="VersionedContent")
T = TypeVar("T")

_THREAD_NAME = "storybench-prompts-blocking"


class _Engine:
    """One background thread running one event loop, and the repository entered on it."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
        self.repository: Any = None
        self.dead = False  # the loop has stopped: nothing scheduled on it will run
        self.failure: BaseException | None = None  # why it stopped by itself
        self.exit_error: Exception | None = None  # what leaving the repository raised
        self._stop = asyncio.Event()
        self._pending: set[concurrent.futures.Future[Any]] = set()

    def start(self) -> None:
        """Start the thread and enter the repository there; raise what building it raised."""
        opened: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.thread.start()
        host = asyncio.run_coroutine_threadsafe(self._host(opened), self.loop)
        try:
            self.repository = opened.result()
        except KeyboardInterrupt:
            host.cancel()  # the thread winds down by itself; the next call starts afresh
            raise
        except BaseException:
            self.thread.join()
            raise

    async def _host(self, opened: concurrent.futures.Future[Any]) -> None:
        # Entered and left in this one task: the repository's task group requires it.
        try:
            repository = self._factory()
            async with repository as entered:
                opened.set_result(entered)
                await self._stop.wait()
        except BaseException as exc:
            if not opened.done():
                opened.set_exception(exc)
            elif self._stop.is_set() and isinstance(exc, Exception):
                self.exit_error = exc
            else:
                self.failure = exc
        finally:
            asyncio.get_running_loop().stop()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            tasks = asyncio.all_tasks(loop)  # calls still running: closed under them
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        except BaseException as exc:
            self.failure = self.failure or exc
        finally:
            self.dead = True
            asyncio.set_event_loop(None)
            loop.close()
            for future in list(self._pending):
                self._abandon(future)

    def _abandon(self, future: concurrent.futures.Future[Any]) -> None:
        """A call scheduled on a loop that stopped before running it."""
        if not future.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(_closed_error("stopped before the call ran"))

    def call(self, make: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """Run ``make(repository)`` on the loop and wait for it in the calling thread."""
        if threading.current_thread() is self.thread:
            raise RuntimeError(
                "a blocking repository was called from its own event loop (from a hook or a "
                "callback?); there, await the async repository instead"
            )
        coroutine = make(self.repository)
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:  # the loop is closed
            coroutine.close()
            raise _closed_error("stopped") from None
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        if self.dead:  # stopped while this call was scheduled, after the loop's last sweep
            self._abandon(future)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()  # cancels the coroutine on the loop
            raise
        except concurrent.futures.CancelledError:
            raise _closed_error("closed while this call ran") from None

    def stop(self) -> None:
        """Leave the repository (mirror writes in progress land), stop the loop, join."""
        with contextlib.suppress(RuntimeError):  # raised when the loop already stopped
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join()
        if self.exit_error is not None:
            raise self.exit_error


def _closed_error(what: str) -> RuntimeError:
    return RuntimeError(f"the blocking repository's event loop {what}")


class _Runner:
    """What one blocking repository and its ``evaluations`` share: the factory and the engine,
    started on first use, rebuilt in a forked child, stopped once by ``close``."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._engine: _Engine | None = None
        self.closed = False
        _RUNNERS.add(self)

    def engine(self) -> _Engine:
        with self._lock:
            if self.closed:
                raise RuntimeError(
                    "this blocking repository is closed; build a new one with "
                    "storybench_prompts.blocking()"
                )
            engine = self._engine
            if engine is None:
                engine = _Engine(self._factory)
                engine.start()  # raises what building or entering the repository raised
                self._engine = engine
                _OPEN.add(self)
            elif engine.dead:
                raise RuntimeError(
                    f"the blocking repository's event loop stopped: {engine.failure!r}; "
                    "close it and build a new one"
                ) from engine.failure
            return engine

    def call(self, make: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        return self.engine().call(make)

    def close(self) -> None:
        with self._lock:
            engine = self._engine
            if engine is not None and threading.current_thread() is engine.thread:
                raise RuntimeError("a blocking repository cannot be closed from its own loop")
            if self.closed:
                return
            self.closed = True
            self._engine = None
        _OPEN.discard(self)
        if engine is not None:
            engine.stop()

    def state(self) -> str:
        if self.closed:
            return "closed"
        return "not started" if self._engine is None else "open"

    def forked(self) -> None:
        """In a child of ``os.fork()``: the parent's thread does not exist here. Drop its
        engine (kept referenced, so no finaliser touches the parent's loop) and start afresh."""
        self._lock = threading.Lock()
        if self._engine is not None:
            _ABANDONED.append(self._engine)
            self._engine = None


# Every runner (to rebuild after a fork), the open ones (to close at exit), and engines a
# forked child inherited and must never run.
_RUNNERS: weakref.WeakSet[_Runner] = weakref.WeakSet()
_OPEN: set[_Runner] = set()
_ABANDONED: list[_Engine] = []


def _close_all_at_exit() -> None:
    for runner in list(_OPEN):
        try:
            runner.close()
        except Exception:
            logger.exception("closing a blocking repository at exit failed")


def _after_fork_in_child() -> None:
    for runner in list(_RUNNERS):
        runner.forked()
    _OPEN.clear()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
forget_imports_of_other_threads_after_fork()


class BlockingRepository(Generic[C]):
    """The async repository, called without ``await``: same answers, same rules, same errors.

    Build it with :func:`blocking`. Calls are safe from any number of threads, and from inside
    a running event loop (they block that loop while they wait). The background loop and the
    repository are built on first use (or on entering ``with``); ``close()`` stops both.
    """

    def __init__(self, factory: Callable[[], CachingRepository[C]]) -> None:
        self._runner = _Runner(factory)
        self._select: Callable[[Any], CachingRepository[C]] = _itself
        self._evaluations: BlockingRepository[EvaluationSet] | None = None

    def __repr__(self) -> str:
        return f"<BlockingRepository ({self._runner.state()})>"

    def __enter__(self) -> BlockingRepository[C]:
        self._runner.engine()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the async repository (mirror writes in progress land), stop the background
        loop and join its thread. Idempotent; closes ``evaluations`` too (one loop serves
        both). Calls afterwards raise :class:`RuntimeError`."""
        self._runner.close()

    def _run(self, call: Callable[[CachingRepository[C]], Awaitable[T]]) -> T:
        select = self._select

        async def on_the_loop(root: Any) -> T:
            return await call(select(root))

        return self._runner.call(on_the_loop)

    @property
    def evaluations(self) -> BlockingRepository[EvaluationSet]:
        """The evaluation sets (criteria), on the same loop and under the same rules."""
        if self._evaluations is None:
            select = self._select
            view: BlockingRepository[EvaluationSet] = object.__new__(BlockingRepository)
            view._runner = self._runner  # one loop, one repository, closed together
            view._select = lambda root: _evaluations_of(select(root))
            view._evaluations = None
            self._evaluations = view
        return self._evaluations

    def latest(self) -> C:
        """The published set with the highest version number."""

        async def call(repository: CachingRepository[C]) -> C:
            return await repository.latest()

        return self._run(call)

    def get(self, version: int, *, expect_hash: str | None = None) -> C:
        """The published set with this version number.

        ``expect_hash``: the ``config_hash`` a run recorded; :class:`ContentChangedError` if
        the version now holds other content.
        """

        async def call(repository: CachingRepository[C]) -> C:
            if expect_hash is None:
                return await repository.get(version)
            return await repository.get(version, expect_hash=expect_hash)

        return self._run(call)

    def get_by_hash(self, config_hash: str) -> C:
        """Exactly the content a run recorded by its ``config_hash`` (cache or mirror)."""

        async def call(repository: CachingRepository[C]) -> C:
            return await repository.get_by_hash(config_hash)

        return self._run(call)

    def versions(self) -> list[VersionInfo]:
        """Published versions, lowest first (from the mirror when Directus cannot answer)."""

        async def call(repository: CachingRepository[C]) -> list[VersionInfo]:
            return await repository.versions()

        return self._run(call)

    def warm(self, versions: Iterable[int] | None = None) -> list[SyncResult]:
        """Load versions (default: every published one) into the cache and the mirror."""
        wanted = None if versions is None else list(versions)

        async def call(repository: CachingRepository[C]) -> list[SyncResult]:
            return await repository.warm(wanted)

        return self._run(call)

    def status(self) -> OriginStatus:
        """Directus's state as the repository sees it (valid or interrupted, since when)."""

        async def call(repository: CachingRepository[C]) -> OriginStatus:
            return repository.status()

        return self._run(call)

    def stats(self) -> Stats:
        """A copy of the repository's counters."""

        async def call(repository: CachingRepository[C]) -> Stats:
            return repository.stats()

        return self._run(call)

    def describe(self) -> dict[str, Any]:
        """Status and counters as plain data (for logs and JSON)."""

        async def call(repository: CachingRepository[C]) -> dict[str, Any]:
            return repository.describe()

        return self._run(call)


def _itself(root: Any) -> Any:
    return root


def _evaluations_of(repository: Any) -> Any:
    evaluations = getattr(repository, "evaluations", None)
    if evaluations is None:
        raise RuntimeError(
            "this repository has no evaluations repository (build_repository() composes "
            "one; a CachingRepository takes evaluations=...)"
        )
    return evaluations


@overload
def blocking(settings: Settings | None = None) -> BlockingRepository[PromptSet]: ...


@overload
def blocking(*, factory: Callable[[], CachingRepository[C]]) -> BlockingRepository[C]: ...


def blocking(
    settings: Settings | None = None,
    *,
    factory: Callable[[], CachingRepository[Any]] | None = None,
) -> BlockingRepository[Any]:
    """A blocking repository: the stack ``build_repository(settings)`` builds (settings from
    the environment when None), or what ``factory`` builds (any async repository: tests,
    custom stacks). The factory is called on the background loop, on first use.

    Use it as ``with blocking() as prompts: prompts.latest()``, or keep it and ``close()`` it
    (an open one is closed at interpreter exit).
    """
    return _blocking(settings, factory)


def _blocking(
    settings: Settings | None, factory: Callable[[], CachingRepository[Any]] | None
) -> BlockingRepository[Any]:
    if factory is not None:
        if settings is not None:
            raise TypeError("blocking() takes settings or a factory, not both")
        return BlockingRepository(factory)

    def build() -> CachingRepository[PromptSet]:
        from ._compose import build_repository

        return build_repository(settings)

    return BlockingRepository(build)
