"""The Directus source: reads published versioned sets over HTTP (httpx, async).

One source reads one content kind (``kind=PROMPT_SETS`` or ``kind=EVALUATION_SETS``); every
query comes from the kind, so the same code serves both.
Siblings made with :meth:`DirectusSource.for_kind` share one pooled ``httpx.AsyncClient``.
Every httpx error and every non-2xx answer is mapped to our error tree in
:func:`map_transport_errors` and :func:`error_for_response`.
"""

from __future__ import annotations

import copy
import email.utils
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, cast
from urllib.parse import urlsplit

import anyio
import httpx
from pydantic import SecretStr

from .._defaults import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
)
from .._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusConnectionError,
    DirectusError,
    DirectusForbiddenError,
    DirectusInvalidResponseError,
    DirectusNotFoundError,
    DirectusRateLimitedError,
    DirectusRequestError,
    DirectusServerError,
    DirectusTimeoutError,
    InvalidPromptSetError,
)
from ..content.kinds import ContentKind
from ..content.models import Provenance, Status, VersionedContent, VersionInfo
from .retry import DEFAULT_RETRY, RetryPolicy, call_with_retries

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_READ_TIMEOUT",
    "DirectusSource",
    "DirectusTimeouts",
]

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=VersionedContent)
D = TypeVar("D", bound=VersionedContent)


@dataclass(frozen=True, slots=True)
class DirectusTimeouts:
    """Seconds allowed for each phase of a request, and for a whole attempt.

    httpx's ``read`` timeout bounds each read from the socket, not the answer: a server that
    sends a few bytes just inside it, again and again, would hold an attempt open forever.
    ``attempt`` bounds one attempt from start to the last byte of the body (connection,
    headers and body together); None means ``connect + read``, as long as a server that
    connects slowly and then answers at the last moment needs, and no longer.
    """

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT
    write: float = DEFAULT_WRITE_TIMEOUT
    pool: float = DEFAULT_POOL_TIMEOUT
    attempt: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool", "attempt"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"Directus {name} timeout must be > 0 s, got {value!r}")

    @property
    def attempt_limit(self) -> float:
        """Seconds one attempt may take in all: ``attempt``, or ``connect + read``."""
        return self.attempt if self.attempt is not None else self.connect + self.read

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def _is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _directus_error_fields(body: bytes) -> tuple[str | None, str | None]:
    """``(extensions.code, message)`` of the first Directus error in a body, if any."""
    try:
        data = json.loads(body)
        first = data["errors"][0]
        code = first.get("extensions", {}).get("code")
        message = first.get("message")
        return (str(code) if code else None, str(message) if message else None)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        return (None, None)


def error_for_response(
    status: int, headers: Mapping[str, str], body: bytes, what: str
) -> DirectusError:
    """The typed error for a non-2xx Directus answer."""
    code, detail = _directus_error_fields(body)
    suffix = f": {code}" if code else ""
    if detail:
        suffix += f" ({detail})"
    kw: dict[str, Any] = {"status": status, "code": code, "detail": detail}
    if status == 401:
        return DirectusAuthenticationError(
            f"Directus rejected the token for {what} (HTTP 401{suffix}); check DIRECTUS_TOKEN",
            **kw,
        )
    if status == 403:
        return DirectusForbiddenError(
            f"Directus refused {what} (HTTP 403{suffix}); the token lacks read permission "
            "or the collection does not exist",
            **kw,
        )
    if status == 404:
        return DirectusNotFoundError(f"Directus has no {what} (HTTP 404{suffix})", **kw)
    if status == 429:
        retry_after = _parse_retry_after(headers.get("retry-after"))
        return DirectusRateLimitedError(
            f"Directus rate-limited {what} (HTTP 429{suffix})", retry_after=retry_after, **kw
        )
    if status >= 500:
        # 503 may carry Retry-After too; the retry policy reads it from the error.
        retry_after = _parse_retry_after(headers.get("retry-after")) if status == 503 else None
        return DirectusServerError(
            f"Directus failed {what} (HTTP {status}{suffix})", retry_after=retry_after, **kw
        )
    return DirectusRequestError(f"Directus refused {what} (HTTP {status}{suffix})", **kw)


@contextmanager
def map_transport_errors(what: str, timeouts: DirectusTimeouts) -> Iterator[None]:
    """Turn httpx's transport errors into ours. The only place httpx errors are caught."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise DirectusConnectionError(
            f"could not connect to Directus for {what} within {timeouts.connect:g} s"
        ) from exc
    except httpx.TimeoutException as exc:
        raise DirectusTimeoutError(
            f"Directus did not answer {what} within {timeouts.read:g} s ({type(exc).__name__})"
        ) from exc
    except (
        httpx.ConnectError,
        httpx.RemoteProtocolError,
        httpx.ReadError,
        httpx.WriteError,
    ) as exc:
        raise DirectusConnectionError(
            f"connection to Directus failed for {what}: {type(exc).__name__}: {exc}"
        ) from exc
    except httpx.TransportError as exc:
        raise DirectusConnectionError(
            f"Directus transport error for {what}: {type(exc).__name__}: {exc}"
        ) from exc
    except (OSError, OverflowError, ExceptionGroup) as exc:
        # Raised below httpx (the socket layer, anyio's connect): still "could not connect".
        raise DirectusConnectionError(
            f"connection to Directus failed for {what}: {type(exc).__name__}"
        ) from exc


class DirectusSource(Generic[C]):
    """Reads the published sets of one content kind from Directus; a ``PromptRepository[C]``.

    ``url`` and ``token`` default to ``DIRECTUS_URL`` and ``DIRECTUS_TOKEN``. ``kind`` says
    what is read (:data:`PROMPT_SETS` or ``EVALUATION_SETS``, always named): its collection, its
    nested query, its converter, and the noun every message uses. ``transport`` is an httpx
    transport to use instead of the network (tests, proxies, counting).

    Each attempt has one deadline for the whole answer (``timeouts.attempt_limit``); the
    retries have another for the whole call (``retry.deadline``). The token never appears in
    a repr, a log line or an error.
    """

    name = "directus"

    def __init__(
        self,
        url: str | None = None,
        token: str | SecretStr | None = None,
        *,
        kind: ContentKind[C],
        timeouts: DirectusTimeouts | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 20,
    ) -> None:
        url = url if url is not None else os.environ.get("DIRECTUS_URL")
        if token is None:
            token = os.environ.get("DIRECTUS_TOKEN")
        if not url:
            raise ConfigurationError("Directus URL missing: set DIRECTUS_URL or pass url=")
        if not token or (isinstance(token, SecretStr) and not token.get_secret_value()):
            raise ConfigurationError("Directus token missing: set DIRECTUS_TOKEN or pass token=")
        parts = urlsplit(url.strip())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigurationError(
                f"DIRECTUS_URL must be an http(s) URL with a host, got {parts.scheme or 'no'} scheme"
            )
        try:
            parts.port  # noqa: B018 (urlsplit checks the port only when asked)
        except ValueError:
            raise ConfigurationError("DIRECTUS_URL has a port out of range") from None
        self.url = url.strip().rstrip("/")
        self.kind = kind
        # A secret file or a paste often ends in a newline; a header cannot carry one (and
        # httpx would quote the whole header, token included, in its error).
        secret = (token.get_secret_value() if isinstance(token, SecretStr) else token).strip()
        if not secret.isascii() or not secret.isprintable() or any(c.isspace() for c in secret):
            raise ConfigurationError(
                "DIRECTUS_TOKEN holds characters an HTTP header cannot carry "
                "(spaces, control or non-ASCII characters)"
            )
        self._token = SecretStr(secret)
        self.timeouts = timeouts or DirectusTimeouts()
        self.retry = retry
        self.max_response_bytes = max_response_bytes
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            logger.warning(
                "sending the Directus token over plain http to %s; use https", parts.hostname
            )
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers={
                "Authorization": f"Bearer {self._token.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": "storybench-prompts",
            },
            timeout=self.timeouts.to_httpx(),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=10),
            follow_redirects=False,
        )
        self._owns_client = True

    def for_kind(self, kind: ContentKind[D]) -> DirectusSource[D]:
        """A source for another kind on the same Directus, sharing this one's connections.

        The sibling has the same URL, token, timeouts, retries and size cap. Only the
        original closes the shared client: close it last; the sibling's ``aclose`` does
        nothing.
        """
        sibling = cast("DirectusSource[D]", copy.copy(self))
        sibling.kind = kind
        sibling._owns_client = False
        return sibling

    def __repr__(self) -> str:
        return f"DirectusSource(url={self.url!r}, kind={self.kind.name!r}, token=***)"

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
        if self._owns_client:
            await self._client.aclose()

    # -- HTTP ------------------------------------------------------------------------------

    async def _get_once(self, path: str, params: Mapping[str, str], what: str) -> Any:
        limit = self.timeouts.attempt_limit
        # httpx's read timeout is per read; this scope bounds the whole attempt, so a body
        # trickled just inside the read timeout still ends at ``limit``.
        with anyio.move_on_after(limit) as scope:
            with map_transport_errors(what, self.timeouts):
                async with self._client.stream("GET", path, params=params) as response:
                    body = await self._read_capped(response, what)
        if scope.cancelled_caught:
            raise DirectusTimeoutError(
                f"Directus did not finish answering {what} within {limit:g} s "
                "(the deadline of one attempt)"
            )
        if not 200 <= response.status_code < 300:
            raise error_for_response(response.status_code, response.headers, body, what)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:  # nested deeper than the parser goes
            raise DirectusInvalidResponseError(
                f"Directus answered {what} with a body that is not JSON "
                f"({len(body)} bytes, content-type {response.headers.get('content-type')!r})",
                status=response.status_code,
            ) from exc
        if not isinstance(payload, dict) or "data" not in payload:
            raise DirectusInvalidResponseError(
                f"Directus answered {what} without a top-level 'data' member",
                status=response.status_code,
            )
        return payload["data"]

    async def _read_capped(self, response: httpx.Response, what: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise DirectusInvalidResponseError(
                f"Directus answer to {what} is {declared} bytes, over the "
                f"{self.max_response_bytes}-byte cap",
                status=response.status_code,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise DirectusInvalidResponseError(
                    f"Directus answer to {what} exceeded the {self.max_response_bytes}-byte cap",
                    status=response.status_code,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def query(self, path: str, params: Mapping[str, str], what: str) -> Any:
        """GET a Directus path with retries; the ``data`` member of the answer."""

        def log_retry(attempt: int, exc: BaseException, wait: float) -> None:
            logger.info("retrying %s in %.2f s after attempt %d: %s", what, wait, attempt, exc)

        return await call_with_retries(
            lambda: self._get_once(path, params, what),
            self.retry,
            what=what,
            on_retry=log_retry,
        )

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        what: str | None = None,
    ) -> Any:
        """Any request to Directus; the whole decoded JSON body (None for an empty body).

        Errors are mapped as in :meth:`query` (typed errors, the size cap). Only GET and HEAD
        are retried: repeating a write Directus may already have applied could apply it twice.
        """
        import json as json_module  # the parameter is storybench's name and shadows the module

        method = method.upper()
        if urlsplit(path).scheme or path.startswith("//"):
            # The token goes with every request: only to this Directus, never to another host.
            raise DirectusRequestError(
                f"request paths are relative to {self.url}; got an absolute URL"
            )
        label = what or f"{method} {path.partition('?')[0]}"
        # httpx would let params= replace a query already in the path; keep both.
        target = httpx.URL(path).copy_merge_params(params) if params is not None else path

        async def once() -> Any:
            with map_transport_errors(label, self.timeouts):
                async with self._client.stream(method, target, json=json) as response:
                    body = await self._read_capped(response, label)
            if not 200 <= response.status_code < 300:
                raise error_for_response(response.status_code, response.headers, body, label)
            if not body.strip():
                return None
            try:
                return json_module.loads(body)
            except ValueError as exc:
                raise DirectusInvalidResponseError(
                    f"Directus answered {label} with a body that is not JSON ({len(body)} bytes)",
                    status=response.status_code,
                ) from exc

        if method not in {"GET", "HEAD"}:
            return await once()

        def log_retry(attempt: int, exc: BaseException, wait: float) -> None:
            logger.info("retrying %s in %.2f s after attempt %d: %s", label, wait, attempt, exc)

        return await call_with_retries(once, self.retry, on_retry=log_retry)

    # -- queries ---------------------------------------------------------------------------

    @property
    def _items(self) -> str:
        return f"/items/{self.kind.collection}"

    async def test_connection(self) -> bool:
        """True when Directus answers and the token may read the kind's collection.

        Raises the typed error (authentication, connection, ...) when it cannot.
        """
        await self.query(
            self._items,
            {"limit": "1", "fields": "id"},
            f"the connection test (reading {self.kind.collection})",
        )
        return True

    async def list_versions(self) -> list[VersionInfo]:
        """Every published version, lowest ``version_number`` first.

        Asks for ``fields=*``: naming a field the schema lacks (``date_created`` on a
        collection created without it) makes Directus refuse the whole query with 403, and
        only ``version_number`` is needed here; every other field is read where it exists.
        """
        noun = self.kind.noun
        data = await self.query(
            self._items,
            {
                "filter[status][_eq]": Status.PUBLISHED.value,
                "fields": "*",
                "sort": "version_number",
                "limit": "-1",
            },
            f"the list of published {noun}s",
        )
        if not isinstance(data, list):
            raise DirectusInvalidResponseError(
                f"Directus listing of published {noun}s: 'data' is not a list"
            )
        out: list[VersionInfo] = []
        for i, item in enumerate(data):
            try:
                out.append(_version_info(item))
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise DirectusInvalidResponseError(
                    f"Directus listing of published {noun}s: item {i} is malformed ({exc})"
                ) from exc
        return out

    async def _fetch_one(self, params: dict[str, str], what: str, version: int | None) -> C:
        params = {
            **params,
            "fields": self.kind.nested_fields,
            "deep": self.kind.nested_deep,
            "limit": "1",
        }
        data = await self.query(self._items, params, what)
        if not isinstance(data, list):
            raise DirectusInvalidResponseError(f"Directus answer to {what}: 'data' is not a list")
        if not data:
            noun = self.kind.noun
            missing = f"{noun} version {version}" if version is not None else noun
            raise DirectusNotFoundError(f"no published {missing} in Directus", version=version)
        fetched_at = time.time()
        try:
            content = self.kind.convert(data[0])
        except InvalidPromptSetError as exc:
            if exc.context:
                raise
            raise InvalidPromptSetError(exc.problems, context=f"Directus {what}") from None
        return content.with_provenance(
            Provenance(source="directus", origin="directus", fetched_at_epoch=fetched_at)
        )

    async def fetch_version(self, version: int) -> C:
        """The published set with this ``version_number``."""
        number = int(version)
        return await self._fetch_one(
            {
                "filter[status][_eq]": Status.PUBLISHED.value,
                "filter[version_number][_eq]": str(number),
            },
            f"{self.kind.noun} version {number}",
            number,
        )

    async def fetch_latest(self) -> C:
        """The published set with the highest ``version_number``."""
        return await self._fetch_one(
            {"filter[status][_eq]": Status.PUBLISHED.value, "sort": "-version_number"},
            f"{self.kind.noun} (latest)",
            None,
        )

    # -- PromptRepository -------------------------------------------------------------------

    async def get(self, version: int) -> C:
        return await self.fetch_version(version)

    async def latest(self) -> C:
        return await self.fetch_latest()

    async def versions(self) -> list[VersionInfo]:
        return await self.list_versions()


def _version_info(item: Mapping[str, Any]) -> VersionInfo:
    """One listed version; every field but ``version_number`` may be absent from the schema."""
    published_at = item.get("published_at")
    if published_at is None:
        # storybench's evaluation_versions spells it this way.
        published_at = item.get("pubslihed_at")
    return VersionInfo(
        version=item["version_number"],
        version_name=item.get("version_name"),
        directus_id=item.get("id"),
        status=item.get("status") or Status.PUBLISHED,
        description=item.get("description"),
        created_at=item.get("date_created"),
        updated_at=item.get("date_updated"),
        published_at=published_at,
    )
