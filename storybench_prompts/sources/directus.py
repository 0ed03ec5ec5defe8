"""The Directus source: reads published versioned sets over HTTP (httpx, async).

One source reads one content kind (``kind=PROMPT_SETS`` or ``kind=EVALUATION_SETS``); every
query comes from the kind, so the same code serves both. Siblings made with
:meth:`DirectusSource.for_kind` share one pooled client. Every request goes through the one
request path in ``http`` (deadlines, size cap, the error mapper).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from .._closing import Closeable
from .._defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_RESPONSE_BYTES
from .._exceptions import (
    ConfigurationError,
    DirectusInvalidResponseError,
    DirectusNotFoundError,
    DirectusRequestError,
    InvalidPromptSetError,
)
from .._logs import fields, get_logger
from ..content.kinds import ContentKind
from ..content.models import Provenance, Status, VersionedContent, VersionInfo
from .directus_url import checked_url, is_loopback
from .http import DirectusHTTP, DirectusTimeouts
from .listing import read_whole
from .retry import DEFAULT_RETRY, RetryPolicy

__all__ = ["DirectusSource", "DirectusTimeouts"]

logger = get_logger(__name__, source="directus")

C = TypeVar("C", bound=VersionedContent)
D = TypeVar("D", bound=VersionedContent)


class DirectusSource(Generic[C], Closeable):
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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        url = url if url is not None else os.environ.get("DIRECTUS_URL")
        if token is None:
            token = os.environ.get("DIRECTUS_TOKEN")
        if not url:
            raise ConfigurationError("Directus URL missing: set DIRECTUS_URL")
        if not token or (isinstance(token, SecretStr) and not token.get_secret_value()):
            raise ConfigurationError("Directus token missing: set DIRECTUS_TOKEN")
        self.url = checked_url(url)
        host = urlsplit(self.url).hostname or ""
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
        if self.url.startswith("http://") and not is_loopback(host):
            logger.warning("sending the Directus token over plain http to %s; use https", host)
        self._http = DirectusHTTP(
            self.url,
            self._token,
            timeouts=self.timeouts,
            retry=retry,
            max_response_bytes=max_response_bytes,
            transport=transport,
            max_connections=max_connections,
        )
        self._client = self._http.client
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

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    # -- HTTP ------------------------------------------------------------------------------

    def _log_retry(self, what: str) -> Any:
        def log(attempt: int, exc: BaseException, wait: float) -> None:
            logger.info(
                "retrying %s in %.2f s after attempt %d: %s",
                what,
                wait,
                attempt,
                exc,
                extra=fields(kind=self.kind.name, source="directus", error=exc),
            )

        return log

    async def query(self, path: str, params: Mapping[str, str], what: str) -> Any:
        """GET a path of Directus's API with retries; the ``data`` member of the answer."""
        return (await self._payload(path, params, what))["data"]

    async def query_all(self, path: str, params: Mapping[str, str], what: str) -> list[Any]:
        """Every item a listing matches, whatever Directus's ``QUERY_LIMIT_MAX`` (see
        :func:`read_whole`)."""
        return await read_whole(lambda page: self._payload(path, page, what), params, what)

    async def _payload(self, path: str, params: Mapping[str, str], what: str) -> dict[str, Any]:
        answer = await self._http.request(
            "GET", path, params=params, what=what, api=True, on_retry=self._log_retry(what)
        )
        payload = answer.json(what, api=True)
        if not isinstance(payload, dict) or "data" not in payload:
            raise DirectusInvalidResponseError(
                f"Directus answered {what} without a top-level 'data' member",
                status=answer.status,
            )
        return payload

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

        Errors are mapped as in :meth:`query` (typed errors, the size cap, both deadlines),
        whatever the method. Only GET and HEAD are retried: repeating a write Directus may
        already have applied could apply it twice.
        """
        method = method.upper()
        if urlsplit(path).scheme or path.startswith("//"):
            # The token goes with every request: only to this Directus, never to another host.
            raise DirectusRequestError(
                f"request paths are relative to {self.url}; got an absolute URL"
            )
        label = what or f"{method} {path.partition('?')[0]}"[:200]
        answer = await self._http.request(
            method, path, params=params, json=json, what=label, on_retry=self._log_retry(label)
        )
        if not answer.body.strip():
            return None
        return answer.json(label)

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
        data = await self.query_all(
            self._items,
            {
                "filter[status][_eq]": Status.PUBLISHED.value,
                "fields": "*",
                "sort": "version_number",
            },
            f"the list of published {noun}s",
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
        content = self._converted(data[0], what, time.time())
        if version is not None and content.version != version:
            # A cache or proxy in front of Directus that ignores the query would hand over
            # another version under this one's number.
            raise DirectusInvalidResponseError(
                f"Directus answer to {what}: it holds version {content.version}, not {version}"
            )
        return content

    def _converted(self, raw: Any, what: str, fetched_at: float) -> C:
        """A raw version item as a checked set, read from Directus now."""
        try:
            content = self.kind.convert(raw)
        except InvalidPromptSetError as exc:
            if exc.context:
                raise
            raise InvalidPromptSetError(exc.problems, context=f"Directus {what}") from None
        return content.read_from(self.kind.directus_keys(raw)).with_provenance(
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

    async def get_many(
        self, versions: Iterable[int], *, page: int = DEFAULT_BATCH_SIZE
    ) -> dict[int, C | InvalidPromptSetError]:
        """Many published versions in few requests (``page`` at a time, each whole: the nested
        limits hold). A version Directus does not publish is absent from the answer; one whose
        content breaks the rules maps to its :class:`InvalidPromptSetError`, and the others
        are served all the same."""
        wanted = sorted({int(v) for v in versions})
        found: dict[int, C | InvalidPromptSetError] = {}
        noun = self.kind.noun
        for start in range(0, len(wanted), max(1, page)):
            chunk = wanted[start : start + max(1, page)]
            what = f"{noun} versions {chunk[0]}-{chunk[-1]} ({len(chunk)})"
            data = await self.query_all(
                self._items,
                {
                    "filter[status][_eq]": Status.PUBLISHED.value,
                    "filter[version_number][_in]": ",".join(str(v) for v in chunk),
                    "fields": self.kind.nested_fields,
                    "deep": self.kind.nested_deep,
                    "sort": "version_number",
                },
                what,
            )
            fetched_at = time.time()
            for raw in data:
                number = raw.get("version_number") if isinstance(raw, Mapping) else None
                if not isinstance(number, int) or number not in chunk:
                    raise DirectusInvalidResponseError(
                        f"Directus answer to {what} holds a version that was not asked for"
                    )
                try:
                    found[number] = self._converted(raw, f"{noun} version {number}", fetched_at)
                except InvalidPromptSetError as exc:
                    found[number] = exc
        return found

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
