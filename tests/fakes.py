"""A scriptable origin and a hand-driven clock for the cache's unit tests."""

from __future__ import annotations

from typing import Any

import anyio

from storybench_prompts import (
    PROMPT_SETS,
    ContentKind,
    PromptSet,
    PromptSetNotFoundError,
    VersionInfo,
)
from storybench_prompts.content.kinds import kind_of
from tests.factories import flat_set


class FakeClock:
    """Monotonic seconds that move only when told (cachetools' testing habit), and a
    ``sleep`` that wakes when the clock has been advanced past its deadline."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [(t, e) for t, e in self._sleepers if t <= self.now]
        self._sleepers = [(t, e) for t, e in self._sleepers if t > self.now]
        for _, event in due:
            event.set()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.sleep(0)
            return
        event = anyio.Event()
        self._sleepers.append((self.now + seconds, event))
        await event.wait()

    @property
    def sleepers(self) -> int:
        return len(self._sleepers)

    async def run_for(self, seconds: float) -> None:
        """Let the tasks just started reach their sleeps, move the clock, and let whatever
        woke up run until everything waits again."""
        await anyio.wait_all_tasks_blocked()
        self.advance(seconds)
        await anyio.wait_all_tasks_blocked()


class ScriptedOrigin:
    """An origin whose answers, failures and delays the test decides."""

    name = "directus"

    def __init__(
        self, versions: dict[int, Any] | None = None, *, kind: ContentKind[Any] | None = None
    ) -> None:
        self.sets = versions if versions is not None else {v: flat_set(v) for v in (1, 2, 3)}
        # The kind of what it serves (as a real source says it), prompt sets when empty.
        self.kind = kind or (kind_of(next(iter(self.sets.values()))) if self.sets else PROMPT_SETS)
        self.calls: list[Any] = []
        self.error: BaseException | None = None
        self.gate: anyio.Event | None = None
        self.active = 0
        self.max_active = 0
        self.closed = False

    async def _answer(self, key: Any) -> PromptSet:
        self.calls.append(key)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await anyio.sleep(0)
            if self.error is not None:
                raise self.error
            version = max(self.sets) if key == "latest" else key
            if version not in self.sets:
                raise PromptSetNotFoundError(f"no version {version}", version=version)
            return self.sets[version]
        finally:
            self.active -= 1

    async def get(self, version: int) -> PromptSet:
        return await self._answer(version)

    async def latest(self) -> PromptSet:
        return await self._answer("latest")

    async def versions(self) -> list[VersionInfo]:
        if self.error is not None:
            raise self.error
        return [self.sets[v].info() for v in sorted(self.sets)]

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> ScriptedOrigin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
