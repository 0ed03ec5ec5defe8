"""An in-memory mirror, shipped for users' own tests (like httpx's ``MockTransport``)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from ._convert import ensure_valid
from ._exceptions import PromptSetNotFoundError
from ._models import PromptSet, Provenance, VersionInfo
from ._repository import SaveOutcome

__all__ = ["InMemoryMirror"]


class InMemoryMirror:
    """A mirror in a dict. Implements ``PromptMirror``; validates like the real ones."""

    name = "memory"

    def __init__(self, prompt_sets: list[Any] | None = None, *, kind: Any = None) -> None:
        self.kind = kind
        self._sets: dict[int, Any] = {}
        self._by_hash: dict[str, Any] = {}
        self.withdrawn: set[int] = set()
        self.saves = 0
        self.active_version: int | None = None
        for prompt_set in prompt_sets or []:
            self._sets[prompt_set.version] = ensure_valid(prompt_set)
            self._by_hash[prompt_set.config_hash] = prompt_set

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
        return None

    def _served(self, prompt_set: PromptSet) -> PromptSet:
        fetched = prompt_set.provenance.fetched_at_epoch if prompt_set.provenance else 0.0
        return prompt_set.with_provenance(
            Provenance(source="mirror", origin="directus", fetched_at_epoch=fetched)
        )

    async def get_by_hash(self, config_hash: str) -> Any:
        try:
            return self._served(self._by_hash[config_hash])
        except KeyError:
            raise PromptSetNotFoundError(f"no {config_hash}") from None

    async def withdraw(self, version: int) -> bool:
        if version in self._sets and version not in self.withdrawn:
            self.withdrawn.add(version)
            return True
        return False

    async def get(self, version: int) -> PromptSet:
        if version in self.withdrawn:
            raise PromptSetNotFoundError(f"withdrawn {version}", version=version)
        try:
            return self._served(self._sets[version])
        except KeyError:
            raise PromptSetNotFoundError(
                f"the memory mirror holds no version {version}", version=version
            ) from None

    async def latest(self) -> PromptSet:
        live = [v for v in self._sets if v not in self.withdrawn]
        if not live:
            raise PromptSetNotFoundError("the memory mirror is empty")
        return self._served(self._sets[max(live)])

    async def versions(self) -> list[VersionInfo]:
        return [self._sets[v].info() for v in sorted(self._sets) if v not in self.withdrawn]

    async def stored_hash(self, version: int) -> str | None:
        stored = self._sets.get(version)
        return stored.config_hash if stored else None

    async def save(self, prompt_set: PromptSet) -> SaveOutcome:
        ensure_valid(prompt_set)
        previous = self._sets.get(prompt_set.version)
        self.withdrawn.discard(prompt_set.version)
        self._by_hash[prompt_set.config_hash] = prompt_set
        if previous is not None and previous.config_hash == prompt_set.config_hash:
            return "unchanged"
        self._sets[prompt_set.version] = prompt_set
        self.saves += 1
        return "new" if previous is None else "updated"

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        if only_if_none and self.active_version is not None:
            return
        if version not in self._sets:
            raise PromptSetNotFoundError(
                f"the memory mirror holds no version {version}", version=version
            )
        self.active_version = version

    async def check_writable(self) -> None:
        return None
