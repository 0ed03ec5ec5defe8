"""storybench's error conventions: every failure a caller sees is a ``DirectusClientError``."""

from __future__ import annotations

from pydantic import ValidationError

from ..._exceptions import (
    ConfigurationError,
    DirectusClientError,
    DirectusConfigurationError,
    InvalidPromptSetError,
    LockedContentNotFoundError,
    Problem,
    PromptSetUnavailableError,
    StorybenchPromptsError,
)

__all__ = [
    "DirectusInvalidContentError",
    "DirectusLockedContentError",
    "DirectusUnavailableError",
    "client_error",
]


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


class DirectusLockedContentError(DirectusClientError, LockedContentNotFoundError):
    """The content ``STORYBENCH_PROMPTS_LOCK`` names is nowhere to be had (``config_hash``
    names it); no other content is served in its place."""

    def __init__(self, exc: LockedContentNotFoundError) -> None:
        LockedContentNotFoundError.__init__(
            self,
            str(exc),
            kind=exc.kind,
            version=exc.version,
            config_hash=exc.config_hash,
            causes=exc.causes,
        )
        self.status = None
        self.code = None
        self.detail = None


def client_error(exc: BaseException) -> DirectusClientError:
    """The DirectusClientError a storybench caller catches for any failure of ours."""
    if isinstance(exc, DirectusClientError):
        return exc
    if isinstance(exc, LockedContentNotFoundError):
        return DirectusLockedContentError(exc)
    if isinstance(exc, PromptSetUnavailableError):
        return DirectusUnavailableError(str(exc), causes=list(exc.causes), described=True)
    if isinstance(exc, InvalidPromptSetError):
        return DirectusInvalidContentError(exc.problems, context=exc.context)
    if isinstance(exc, ConfigurationError):
        return DirectusConfigurationError(str(exc))
    if isinstance(exc, ValidationError):  # a setting in the environment is malformed
        return DirectusConfigurationError(f"invalid storybench-prompts setting: {exc}")
    return DirectusUnavailableError(f"{type(exc).__name__}: {exc}", causes=[exc])
