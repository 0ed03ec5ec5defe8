"""Every error this library raises, in one tree.

    StorybenchPromptsError
    ├── ConfigurationError ............ a required setting is missing or wrong
    ├── InvalidPromptSetError ......... content breaks the rules; lists every problem with its path
    ├── ContentChangedError ........... a version no longer holds the content a run expected
    ├── LockedContentNotFoundError .... the content a lock names (by hash) is nowhere to be had
    ├── PromptSetNotFoundError ........ the source answered: no such published version
    │   └── DirectusNotFoundError (also a DirectusClientError)
    ├── SourceUnavailableError ........ the source could not answer
    │   ├── DirectusAuthenticationError   401
    │   ├── DirectusForbiddenError        403: no permission, or a missing collection/item
    │   ├── DirectusRateLimitedError      429, with ``retry_after`` seconds
    │   ├── DirectusRequestError          any other 4xx
    │   ├── DirectusServerError           5xx
    │   ├── DirectusTimeoutError          no answer within the timeout
    │   │   └── DirectusPoolTimeoutError  no free local connection in time (not Directus)
    │   ├── DirectusConnectionError       refused, reset, DNS
    │   ├── DirectusInvalidResponseError  not JSON, wrong shape, over the size cap
    │   ├── MirrorUnavailableError        MongoDB unreachable or stalled, file I/O failed
    │   ├── MirrorCorruptError            a stored copy fails validation; never served
    │   ├── FetchInterruptedError         a shared fetch was cancelled or interrupted
    │   └── PromptSetUnavailableError     nothing could serve; ``causes`` holds every error
    └── DirectusClientError ........... base of every ``Directus*Error`` (storybench's name)
        └── DirectusConfigurationError    a setting is wrong (also a ConfigurationError): no
                                          URL or token, or answers that cannot be Directus's

``DirectusClientError`` is, as in storybench's own client, the base of every error about
talking to Directus (``DirectusError`` is the same class), so ``except DirectusClientError``
in code written against storybench keeps catching every failure it caught before, and more.

Third-party errors (httpx, PyMongo, OS errors) are mapped to these in one place per source:
``_directus.map_transport_errors`` and ``_mongo_mirror.map_pymongo_errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConfigurationError",
    "ContentChangedError",
    "DirectusAuthenticationError",
    "DirectusClientError",
    "DirectusConfigurationError",
    "DirectusConnectionError",
    "DirectusError",
    "DirectusForbiddenError",
    "DirectusInvalidResponseError",
    "DirectusNotFoundError",
    "DirectusPoolTimeoutError",
    "DirectusRateLimitedError",
    "DirectusRequestError",
    "DirectusServerError",
    "DirectusTimeoutError",
    "FetchInterruptedError",
    "InvalidPromptSetError",
    "LockedContentNotFoundError",
    "MirrorCorruptError",
    "MirrorUnavailableError",
    "Problem",
    "PromptSetNotFoundError",
    "PromptSetUnavailableError",
    "SourceUnavailableError",
    "StorybenchPromptsError",
]


class StorybenchPromptsError(Exception):
    """Base of every error raised by storybench-prompts."""


class ConfigurationError(StorybenchPromptsError):
    """A required setting is missing or malformed. The message names the setting."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One rule broken by a prompt set: where (``path``) and what (``message``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidPromptSetError(StorybenchPromptsError):
    """Content that must not be served or stored. ``problems`` lists every broken rule."""

    def __init__(self, problems: Sequence[Problem], *, context: str = "") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.context = context
        head = f"invalid prompt set{f' ({context})' if context else ''}"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}: {len(self.problems)} problem(s)\n{lines}")


class PromptSetNotFoundError(StorybenchPromptsError):
    """The source answered, and it holds no such published version."""

    def __init__(self, message: str, *, version: int | None = None) -> None:
        self.version = version
        super().__init__(message)


class SourceUnavailableError(StorybenchPromptsError):
    """The source could not answer (down, slow, refusing us, or answering nonsense)."""


class DirectusClientError(StorybenchPromptsError):
    """Base of every error about talking to Directus (storybench's name for it).

    ``status`` is the HTTP status (None when no response came), ``code`` the Directus
    ``extensions.code`` (e.g. ``INVALID_CREDENTIALS``) and ``detail`` its message.
    ``setting`` names the setting to fix when the error is one (``DIRECTUS_URL``,
    ``DIRECTUS_TOKEN``), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        setting: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.setting = setting
        super().__init__(message)


DirectusError = DirectusClientError
"""The same class; the name this library used first."""


class DirectusConfigurationError(DirectusClientError, ConfigurationError):
    """A Directus setting is wrong, and waiting will not fix it: no URL or token, or answers
    that cannot come from Directus (a web page, a 404 on its API, TLS spoken to plain http).
    ``setting`` names the variable to fix."""


class ContentChangedError(StorybenchPromptsError):
    """The version asked for holds other content than the ``config_hash`` expected."""

    def __init__(self, message: str, *, version: int, expected: str, actual: str) -> None:
        self.version = version
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class LockedContentNotFoundError(StorybenchPromptsError):
    """The content a lock names cannot be had: Directus's version now holds other content (or
    is gone), and no cache or mirror holds a copy that hashes to the locked ``config_hash``.

    Never answered with other content. ``kind`` is the kind's name, ``causes`` why each place
    looked at had no such copy (a :class:`MirrorCorruptError` among them: a copy was there but
    no longer hashes to it).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        version: int,
        config_hash: str,
        causes: Sequence[BaseException] = (),
    ) -> None:
        self.kind = kind
        self.version = version
        self.config_hash = config_hash
        self.causes: tuple[BaseException, ...] = tuple(causes)
        super().__init__(message)


class DirectusAuthenticationError(DirectusClientError, SourceUnavailableError):
    """401: the token is wrong or expired. Never retried."""


class DirectusForbiddenError(DirectusClientError, SourceUnavailableError):
    """403: no permission. Directus also answers 403 for a missing collection or item."""


class DirectusRateLimitedError(DirectusClientError, SourceUnavailableError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class DirectusRequestError(DirectusClientError, SourceUnavailableError):
    """Any other 4xx, e.g. 400 ``INVALID_QUERY``."""


class DirectusNotFoundError(DirectusClientError, PromptSetNotFoundError):
    """The version asked for is not published in Directus (an empty answer, or HTTP 404)."""

    def __init__(self, message: str, *, version: int | None = None, **kw: object) -> None:
        DirectusClientError.__init__(self, message, **kw)  # type: ignore[arg-type]
        self.version = version


class DirectusServerError(DirectusClientError, SourceUnavailableError):
    """5xx from Directus. ``retry_after`` is the server's hint in seconds (503), if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class DirectusTimeoutError(DirectusClientError, SourceUnavailableError):
    """Directus did not answer within the configured timeout."""


class DirectusPoolTimeoutError(DirectusTimeoutError):
    """No connection of this process's pool came free in time: a local wait, not a failure
    of Directus (it never marks Directus as failing)."""


class DirectusConnectionError(DirectusClientError, SourceUnavailableError):
    """No connection to Directus (refused, reset, name not resolved)."""


class DirectusInvalidResponseError(DirectusClientError, SourceUnavailableError):
    """Directus answered something unusable: not JSON, the wrong shape, or too large."""


class MirrorUnavailableError(SourceUnavailableError):
    """The mirror (MongoDB or the snapshot directory) could not be read or written."""


class MirrorCorruptError(SourceUnavailableError):
    """A stored copy fails validation (hand-edited, truncated). It is never served.

    ``location`` names the file or the MongoDB document.
    """

    def __init__(self, message: str, *, location: str) -> None:
        self.location = location
        super().__init__(message)


class FetchInterruptedError(SourceUnavailableError):
    """A shared fetch ended without an answer (cancelled, or the process interrupted)."""


class PromptSetUnavailableError(SourceUnavailableError):
    """No source, cache or mirror could serve the request. ``causes`` holds each failure."""

    def __init__(self, message: str, *, causes: Sequence[BaseException]) -> None:
        self.causes: tuple[BaseException, ...] = tuple(causes)
        detail = "; ".join(f"{type(c).__name__}: {_first_line(c)}" for c in self.causes)
        super().__init__(f"{message} ({detail})" if detail else message)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""
