"""What every mirror is: a writable copy of published sets (``PromptMirror``), for any kind."""

from __future__ import annotations

from typing import Literal, Protocol, TypeVar, runtime_checkable

from ..content.models import VersionedContent
from ..sources.base import PromptRepository

__all__ = ["PromptMirror", "SaveOutcome"]

C = TypeVar("C", bound=VersionedContent)


SaveOutcome = Literal["new", "updated", "unchanged"]
"""What :meth:`PromptMirror.save` did."""


@runtime_checkable
class PromptMirror(PromptRepository[C], Protocol[C]):
    """A writable copy of published sets that serves when Directus cannot.

    ``get``/``latest``/``versions`` never serve a withdrawn version. Every content a mirror
    ever saved stays readable by its hash (:meth:`get_by_hash`): it is the record of what a
    past benchmark run used.
    """

    name: str
    """Short label used in provenance and messages, e.g. ``mongodb`` or ``file``."""

    async def save(self, content: C) -> SaveOutcome:
        """Store a validated copy as the current one for its version.

        Writes nothing when the current copy has the same hash. Never changes which set is
        active, and never makes a withdrawn version servable again unless this very save is
        of fresh content from Directus (it clears the withdrawal).
        """
        ...

    async def stored_hash(self, version: int) -> str | None:
        """The ``config_hash`` of the current copy of this version, or None when absent."""
        ...

    async def get_by_hash(self, config_hash: str) -> C:
        """Exactly the content saved with this ``config_hash``, withdrawn or not."""
        ...

    async def withdraw(self, version: int) -> bool:
        """Directus no longer publishes this version: keep it as a record, never serve it.

        Returns whether anything changed. Where the mirror tracks an active set and this was
        it, the highest version still served becomes active.
        """
        ...

    async def activate(self, version: int, *, only_if_none: bool = False) -> None:
        """Mark this version as the one storybench runs (MongoDB's ``is_active``).

        ``only_if_none``: only when no set is active at all. Mirrors without that notion do
        nothing.
        """
        ...

    async def check_writable(self) -> None:
        """Raise :class:`MirrorUnavailableError` unless a write would succeed now."""
        ...
