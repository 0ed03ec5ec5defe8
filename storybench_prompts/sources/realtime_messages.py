"""Directus's realtime messages: one connection's end, sending and receiving JSON frames,
reading an event's rows, and saying why a connection failed (never with the token).

Directus (11+, ``WEBSOCKETS_ENABLED=true``) serves a WebSocket at ``/websocket`` on its own
URL. The conversation, as Directus 12.4 holds it:

1. the client's first message authenticates: ``{"type": "auth", "access_token": TOKEN}``;
   Directus answers ``{"type": "auth", "status": "ok"}`` or an ``error`` (``AUTH_FAILED`` for a
   wrong token) and then closes;
2. one ``{"type": "subscribe", "collection": C, "uid": C, "query": {"fields": [...]}}`` per
   collection; Directus first answers ``{"type": "subscription", "event": "init", ...}``, or
   ``{"type": "subscribe", "status": "error", "uid": C}`` for a collection it does not have or
   the token may not read;
3. then one message per change: ``{"type": "subscription", "event": "create" | "update" |
   "delete", "uid": C, "data": ...}``. ``create``/``update`` carry the rows with the query's
   fields (a foreign key as its bare key); ``delete`` carries the keys alone, as strings;
4. with its heartbeat on (every 30 s by default) Directus sends ``{"type": "ping"}`` and closes
   a connection that has not answered ``{"type": "pong"}`` by the next beat.

A Directus with realtime off answers the upgrade with 404 ``ROUTE_NOT_FOUND``. A read-only
token is enough for all of the above.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
from httpx_ws import (
    AsyncWebSocketSession,
    WebSocketDisconnect,
    WebSocketInvalidTypeReceived,
    WebSocketNetworkError,
)

from .._logs import get_logger

__all__ = [
    "Ended",
    "describe_failure",
    "error_code",
    "event_ids",
    "event_rows",
    "ping",
    "receive",
    "send",
    "upgrade_refused",
]

logger = get_logger("storybench_prompts.realtime", source="directus")


class Ended(Exception):
    """One connection is over; ``refused`` means the server does not offer realtime."""

    def __init__(self, reason: str, *, refused: bool = False, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused
        self.auth = auth


def upgrade_refused(response: httpx.Response) -> Ended:
    status = response.status_code
    # 404 is what Directus with WEBSOCKETS_ENABLED=false answers; other 4xx (a proxy that
    # does not pass upgrades, a server that is not Directus) mean the same to us. Overload
    # and server errors are passing trouble and are retried like a dropped connection.
    transient = status in (408, 429) or (status >= 500 and status != 501)
    if transient:
        return Ended(f"WebSocket upgrade answered HTTP {status}")
    return Ended(
        f"WebSocket upgrade refused with HTTP {status}; realtime needs "
        "WEBSOCKETS_ENABLED=true on the Directus server",
        refused=True,
    )


async def send(ws: AsyncWebSocketSession, message: dict[str, Any]) -> None:
    await ws.send_text(json.dumps(message, separators=(",", ":")))


async def receive(ws: AsyncWebSocketSession) -> dict[str, Any]:
    while True:
        try:
            text = await ws.receive_text()
        except WebSocketInvalidTypeReceived:
            continue  # Directus speaks text frames only
        except WebSocketDisconnect as exc:
            raise Ended(f"the server closed the connection (code {exc.code})") from None
        except WebSocketNetworkError:
            raise Ended("the connection was lost") from None
        try:
            message = json.loads(text)
        except ValueError:
            logger.debug("ignoring a realtime message that is not JSON")
            continue
        if isinstance(message, dict):
            return message


def describe_failure(exc: BaseException, *, url: str, handshake_timeout: float, secret: str) -> str:
    """A one-line reason without the token, whatever the exception held."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, httpx.ConnectError):
        text = f"cannot connect to {url}"
    elif isinstance(exc, httpx.TimeoutException | TimeoutError):
        text = f"no answer within {handshake_timeout:g} s"
    elif isinstance(exc, WebSocketNetworkError):
        text = "the connection was lost"
    elif isinstance(exc, WebSocketDisconnect):
        text = f"the server closed the connection (code {exc.code})"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace(secret, "***") if secret else text


def error_code(message: dict[str, Any]) -> str:
    error = message.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or error.get("message") or "error")
    return "error"


def event_rows(data: Any) -> list[Mapping[str, Any]]:
    """The rows of an event, each with its ``id`` (as in :func:`event_ids`) and the fields the
    subscription asked for; a delete's keys become ``{"id": key}``."""
    items = data if isinstance(data, list) else [data]
    rows: list[Mapping[str, Any]] = []
    for item in items:
        keys = event_ids([item])
        if keys:
            rows.append({**(item if isinstance(item, dict) else {}), "id": keys[0]})
    return rows


def event_ids(data: Any) -> list[str | int]:
    """Item keys from an event: ``[{"id": 1}]`` for create/update, ``["1"]`` for delete.

    Directus sends a deleted item's key as a string even for integer keys; numeric strings are
    turned back into ints so one item has one key in every event.
    """
    items = data if isinstance(data, list) else [data]
    out: list[str | int] = []
    for item in items:
        key = item.get("id") if isinstance(item, dict) else item
        if isinstance(key, bool) or key is None:
            continue
        if isinstance(key, str) and key.isdigit():
            out.append(int(key))
        elif isinstance(key, str | int):
            out.append(key)
    return out


async def ping(ws: AsyncWebSocketSession, pong_within: float, silence: float) -> None:
    """A WebSocket ping after ``silence`` seconds without a message: :class:`Ended` unless
    the pong comes within ``pong_within`` seconds (the link is dead)."""
    pong = await ws.ping()
    try:
        with anyio.fail_after(pong_within):
            await pong.wait()
    except TimeoutError:
        raise Ended(
            f"no answer to a ping within {pong_within:g} s after {silence:g} s of silence"
        ) from None
