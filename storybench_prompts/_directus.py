"""The Directus source: reads published prompt sets over HTTP (httpx, async).

One pooled ``httpx.AsyncClient`` per instance. Every httpx error and every non-2xx answer is
mapped to our error tree in :func:`map_transport_errors` and :func:`error_for_response`.
"""

from __future__ import annotations

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
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from ._convert import convert_version, parse_version
from ._exceptions import (
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
)
from ._models import PromptSet, Provenance, VersionInfo
from ._retry import DEFAULT_RETRY, RetryPolicy, call_with_retries

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_READ_TIMEOUT",
    "DirectusClient",
    "DirectusSource",
    "DirectusTimeouts",
]

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10.0
# A serverless Directus can take most of a minute to wake; a shorter read timeout would fail
# requests that would have succeeded. The cache's hedge, not this timeout, keeps callers fast.
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_WRITE_TIMEOUT = 10.0
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

COLLECTION = "prompt_set_versions"
NESTED_FIELDS = ",".join(
    [
        "*",
        "sequences_in_set.id",
        "sequences_in_set.prompt_sequences_id.*",
        "sequences_in_set.prompt_sequences_id.prompts_in_sequence.id",
        "sequences_in_set.prompt_sequences_id.prompts_in_sequence.prompts_id.*",
    ]
)
# Without these, Directus cuts every nested list at its default limit (100) without saying so.
NESTED_DEEP = json.dumps(
    {
        "sequences_in_set": {
            "_limit": -1,
            "prompt_sequences_id": {"prompts_in_sequence": {"_limit": -1}},
        }
    },
    separators=(",", ":"),
)
VERSION_FIELDS = (
    "id,version_number,version_name,description,date_created,date_updated,status,published_at"
)


@dataclass(frozen=True, slots=True)
class DirectusTimeouts:
    """Seconds allowed for each phase of a request."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT
    write: float = DEFAULT_WRITE_TIMEOUT
    pool: float = DEFAULT_POOL_TIMEOUT

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
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
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


class DirectusSource:
    """Reads published prompt sets from Directus. Implements ``PromptRepository``.

    ``url`` and ``token`` default to ``DIRECTUS_URL`` and ``DIRECTUS_TOKEN``. ``transport`` is
    an httpx transport to use instead of the network (tests, proxies, counting).
    """

    name = "directus"

    def __init__(
        self,
        url: str | None = None,
        token: str | SecretStr | None = None,
        *,
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
        self.url = url.strip().rstrip("/")
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
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

    def __repr__(self) -> str:
        return f"DirectusSource(url={self.url!r}, token=***)"

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
        await self._client.aclose()

    # -- HTTP ------------------------------------------------------------------------------

    async def _get_once(self, path: str, params: Mapping[str, str], what: str) -> Any:
        with map_transport_errors(what, self.timeouts):
            async with self._client.stream("GET", path, params=params) as response:
                body = await self._read_capped(response, what)
        if not 200 <= response.status_code < 300:
            raise error_for_response(response.status_code, response.headers, body, what)
        try:
            payload = json.loads(body)
        except ValueError as exc:
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
            lambda: self._get_once(path, params, what), self.retry, on_retry=log_retry
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

    async def test_connection(self) -> bool:
        """True when Directus answers and the token may read the prompt set collection.

        Raises the typed error (authentication, connection, ...) when it cannot.
        """
        await self.query(
            f"/items/{COLLECTION}", {"limit": "1", "fields": "id"}, "the connection test"
        )
        return True

    async def list_versions(self) -> list[VersionInfo]:
        data = await self.query(
            f"/items/{COLLECTION}",
            {
                "filter[status][_eq]": "published",
                "fields": VERSION_FIELDS,
                "sort": "version_number",
                "limit": "-1",
            },
            "the list of published versions",
        )
        if not isinstance(data, list):
            raise DirectusInvalidResponseError("Directus version listing: 'data' is not a list")
        out: list[VersionInfo] = []
        for i, item in enumerate(data):
            try:
                out.append(
                    VersionInfo(
                        version=item["version_number"],
                        version_name=item.get("version_name"),
                        directus_id=item.get("id"),
                        status=item.get("status", "published"),
                        description=item.get("description"),
                        created_at=item.get("date_created"),
                        updated_at=item.get("date_updated"),
                        published_at=item.get("published_at"),
                    )
                )
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise DirectusInvalidResponseError(
                    f"Directus version listing: item {i} is malformed ({exc})"
                ) from exc
        return out

    async def _fetch_one(self, params: dict[str, str], what: str, version: int | None) -> PromptSet:
        params = {**params, "fields": NESTED_FIELDS, "deep": NESTED_DEEP, "limit": "1"}
        data = await self.query(f"/items/{COLLECTION}", params, what)
        if not isinstance(data, list):
            raise DirectusInvalidResponseError(f"Directus answer to {what}: 'data' is not a list")
        if not data:
            raise DirectusNotFoundError(
                f"no published prompt set {what.removeprefix('prompt set ')} in Directus",
                version=version,
            )
        fetched_at = time.time()
        parsed = parse_version(data[0], context=f"Directus {what}")
        prompt_set = convert_version(parsed)
        return prompt_set.with_provenance(
            Provenance(source="directus", origin="directus", fetched_at_epoch=fetched_at)
        )

    async def fetch_version(self, version: int) -> PromptSet:
        """The published set with this ``version_number``."""
        return await self._fetch_one(
            {"filter[status][_eq]": "published", "filter[version_number][_eq]": str(int(version))},
            f"prompt set version {version}",
            version,
        )

    async def fetch_latest(self) -> PromptSet:
        """The published set with the highest ``version_number``."""
        return await self._fetch_one(
            {"filter[status][_eq]": "published", "sort": "-version_number"},
            "prompt set (latest)",
            None,
        )

    # -- PromptRepository -------------------------------------------------------------------

    async def get(self, version: int) -> PromptSet:
        return await self.fetch_version(version)

    async def latest(self) -> PromptSet:
        return await self.fetch_latest()

    async def versions(self) -> list[VersionInfo]:
        return await self.list_versions()

    # -- storybench's names ----------------------------------------------------------------

    async def fetch_prompts(self, version_number: int | None = None) -> PromptSet:
        """storybench's name: the given version, or the latest published one."""
        if version_number is None:
            return await self.fetch_latest()
        return await self.fetch_version(version_number)

    async def list_published_versions(self) -> list[VersionInfo]:
        """storybench's name for :meth:`list_versions`."""
        return await self.list_versions()

    @staticmethod
    def convert_to_storybench_format(version: Mapping[str, Any]) -> PromptSet:
        """storybench's name: a raw Directus version item to the flat prompt set."""
        return convert_version(parse_version(version))


class DirectusClient(DirectusSource):
    """storybench's client, by its name and constructor: ``DirectusClient(base_url, token,
    timeout=60)``, so ``from storybench_prompts import DirectusClient`` is the whole migration.

    ``timeout`` is the read timeout in seconds (a cold serverless Directus can take that long).
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | SecretStr | None = None,
        timeout: float = DEFAULT_READ_TIMEOUT,
        **options: Any,
    ) -> None:
        options.setdefault("timeouts", DirectusTimeouts(read=float(timeout)))
        super().__init__(base_url, token, **options)

    def __repr__(self) -> str:
        return f"DirectusClient(base_url={self.url!r}, token=***)"
