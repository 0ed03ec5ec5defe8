"""The one request path to Directus: a deadline per attempt and per call, a size cap, and the
one place httpx's errors and Directus's answers become ours.

Every request (a query of the sources, the drop-in's raw ``_make_request``, whatever the
method) goes through :meth:`DirectusHTTP.attempt`: connection, headers and the whole body
within ``timeouts.attempt_limit`` (httpx's own read timeout bounds each read, not the answer),
at most ``max_response_bytes``. :meth:`DirectusHTTP.request` retries it (GET and HEAD only:
repeating a write Directus may already have applied could apply it twice) within
``retry.deadline``. An answer that cannot be Directus's (a web page, a 404 on its API, TLS
spoken to a plain-http server) is a :class:`DirectusConfigurationError` naming the setting to
fix, never an outage: it will not fix itself.
"""

from __future__ import annotations

import email.utils
import json
import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from pydantic import SecretStr

from .._defaults import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
)
from .._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusConfigurationError,
    DirectusConnectionError,
    DirectusError,
    DirectusForbiddenError,
    DirectusInvalidResponseError,
    DirectusNotFoundError,
    DirectusPoolTimeoutError,
    DirectusRateLimitedError,
    DirectusRequestError,
    DirectusServerError,
    DirectusTimeoutError,
)
from .retry import RetryPolicy, call_with_retries

__all__ = [
    "DirectusHTTP",
    "DirectusTimeouts",
    "error_for_response",
    "map_transport_errors",
    "shared_ssl_context",
]


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


def _is_json(headers: Mapping[str, str]) -> bool:
    return "json" in headers.get("content-type", "").lower()


def error_for_response(
    status: int, headers: Mapping[str, str], body: bytes, what: str, *, api: bool = False
) -> DirectusError:
    """The typed error for a non-2xx Directus answer.

    ``api``: the request was to Directus's own items API, where Directus itself never answers
    404 (a missing item or collection is a 403): a 404 there, or a 4xx web page, means
    ``DIRECTUS_URL`` does not point at Directus.
    """
    code, detail = _directus_error_fields(body)
    suffix = f": {code}" if code else ""
    if detail:
        suffix += f" ({detail})"
    kw: dict[str, Any] = {"status": status, "code": code, "detail": detail}
    if status == 401:
        return DirectusAuthenticationError(
            f"Directus rejected the token for {what} (HTTP 401{suffix}); check DIRECTUS_TOKEN",
            setting="DIRECTUS_TOKEN",
            **kw,
        )
    if api and 400 <= status < 500 and status != 429 and (status == 404 or not _is_json(headers)):
        return DirectusConfigurationError(
            f"DIRECTUS_URL does not point at Directus's API: {what} was answered HTTP {status}"
            f"{suffix or ' with a ' + (headers.get('content-type') or 'non-JSON') + ' page'}; "
            "give the server's base URL (without /admin or /items)",
            setting="DIRECTUS_URL",
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


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def map_transport_errors(what: str, timeouts: DirectusTimeouts) -> Iterator[None]:
    """Turn httpx's transport errors into ours: the one mapper for a request's (the realtime
    channel's handshake maps its own, into a reconnect)."""
    try:
        yield
    except httpx.PoolTimeout as exc:
        raise DirectusPoolTimeoutError(
            f"no free connection to Directus for {what} within {timeouts.pool:g} s: this "
            "process already has its connection pool busy (a local wait, not Directus failing)"
        ) from exc
    except httpx.ConnectTimeout as exc:
        raise DirectusConnectionError(
            f"could not connect to Directus for {what} within {timeouts.connect:g} s"
        ) from exc
    except httpx.TimeoutException as exc:
        raise DirectusTimeoutError(
            f"Directus did not answer {what} within {timeouts.read:g} s ({type(exc).__name__})"
        ) from exc
    except httpx.ConnectError as exc:
        tls = _tls_failure(exc)
        if tls is not None:
            reason = getattr(tls, "reason", None) or type(tls).__name__
            plain = reason in {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}
            hint = (
                "DIRECTUS_URL says https:// but the server speaks plain http; use http:// "
                "(or put TLS in front of Directus)"
                if plain
                else "the server's TLS certificate or setup is not accepted; check DIRECTUS_URL"
            )
            raise DirectusConfigurationError(
                f"TLS failed for {what} ({reason}): {hint}", setting="DIRECTUS_URL"
            ) from exc
        raise DirectusConnectionError(
            f"connection to Directus failed for {what}: {type(exc).__name__}: {exc}"
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise DirectusConnectionError(
            f"connection to Directus failed for {what}: {type(exc).__name__}: {exc}"
        ) from exc
    except httpx.TransportError as exc:
        raise DirectusConnectionError(
            f"Directus transport error for {what}: {type(exc).__name__}: {exc}"
        ) from exc
    except httpx.InvalidURL as exc:
        # A path with a newline, a NUL, or too long: a bad request of ours, never sent.
        raise DirectusRequestError(f"{what}: not a valid request URL ({exc})") from None
    except (OSError, OverflowError, ExceptionGroup) as exc:
        # Raised below httpx (the socket layer, anyio's connect): still "could not connect".
        raise DirectusConnectionError(
            f"connection to Directus failed for {what}: {type(exc).__name__}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Answer:
    """One attempt's answer: status, headers and the whole body (capped)."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self, what: str, *, api: bool = False) -> Any:
        """The decoded body; a 2xx web page from Directus's API (``api``) cannot be Directus's."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:  # nested deeper than the parser goes
            content_type = self.headers.get("content-type")
            if (
                api
                and 200 <= self.status < 300
                and not _is_json(self.headers)
                and self.body.lstrip()[:1] == b"<"
            ):
                raise DirectusConfigurationError(
                    f"DIRECTUS_URL does not point at Directus's API: {what} was answered with "
                    f"a web page ({content_type}), not JSON",
                    setting="DIRECTUS_URL",
                    status=self.status,
                ) from exc
            raise DirectusInvalidResponseError(
                f"Directus answered {what} with a body that is not JSON "
                f"({len(self.body)} bytes, content-type {content_type!r})",
                status=self.status,
            ) from exc


_SSL_CONTEXT: list[ssl.SSLContext] = []


def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client of the process, made once: what httpx would make for
    each (the same trust settings), without loading the CA bundle per client, and without a
    thread inside OpenSSL's context set-up at every stack built (a fork then can hang the
    child)."""
    if not _SSL_CONTEXT:
        import certifi

        if os.environ.get("SSL_CERT_FILE"):
            context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            context = ssl.create_default_context(cafile=certifi.where())
        _SSL_CONTEXT.append(context)
    return _SSL_CONTEXT[0]


class DirectusHTTP:
    """The pooled HTTP client of one Directus (shared by the sources of every kind)."""

    def __init__(
        self,
        url: str,
        token: SecretStr,
        *,
        timeouts: DirectusTimeouts,
        retry: RetryPolicy,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.timeouts = timeouts
        self.retry = retry
        self.max_response_bytes = max_response_bytes
        self.client = httpx.AsyncClient(
            base_url=url,
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": "storybench-prompts",
            },
            timeout=timeouts.to_httpx(),
            transport=transport,
            verify=shared_ssl_context(),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections // 2
            ),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def attempt(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        what: str,
    ) -> Answer:
        """One request, bounded whole by ``timeouts.attempt_limit``."""
        limit = self.timeouts.attempt_limit
        with anyio.move_on_after(limit) as scope, map_transport_errors(what, self.timeouts):
            # httpx would let params= replace a query already in the path; keep both.
            target = httpx.URL(path).copy_merge_params(params) if params is not None else path
            async with self.client.stream(method, target, json=json) as response:
                body = await self._read_capped(response, what)
        if scope.cancelled_caught:
            raise DirectusTimeoutError(
                f"Directus did not finish answering {what} within {limit:g} s "
                "(the deadline of one attempt)"
            )
        return Answer(response.status_code, response.headers, body)

    async def _read_capped(self, response: httpx.Response, what: str) -> bytes:
        declared = response.headers.get("content-length")
        cap = self.max_response_bytes
        if declared and declared.isdigit() and int(declared) > cap:
            raise DirectusInvalidResponseError(
                f"Directus answer to {what} is {declared} bytes, over the {cap}-byte cap",
                status=response.status_code,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise DirectusInvalidResponseError(
                    f"Directus answer to {what} exceeded the {cap}-byte cap",
                    status=response.status_code,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        what: str,
        api: bool = False,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> Answer:
        """A 2xx answer to ``method path``, retried by the policy when the method is safe;
        every other answer raised as its typed error (``api``: see :func:`error_for_response`)."""

        async def once() -> Answer:
            answer = await self.attempt(method, path, params=params, json=json, what=what)
            if not 200 <= answer.status < 300:
                raise error_for_response(answer.status, answer.headers, answer.body, what, api=api)
            return answer

        if method.upper() not in {"GET", "HEAD"}:
            return await once()
        return await call_with_retries(once, self.retry, what=what, on_retry=on_retry)
