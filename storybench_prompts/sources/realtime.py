"""Directus realtime: a WebSocket that says which items changed, so caches need not wait for TTLs.

:class:`RealtimeChannel` holds the conversation (``realtime_messages`` describes it) for its
owner, the stack or the ``watch`` command: it reports each change with its rows through
``on_rows`` (or ``on_change``) and every (re)connection through ``on_connected`` (Directus does
not replay the changes made while the socket was down, so the owner checks what it holds
then). It never polls: while the socket is up nothing goes to Directus but pongs, and a
WebSocket ping only after a long silence.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal, NoReturn

import anyio
import httpx
from httpx_ws import (
    AsyncWebSocketSession,
    HTTPXWSException,
    WebSocketUpgradeError,
    aconnect_ws,
)
from pydantic import SecretStr

from .._exceptions import ConfigurationError
from .._logs import get_logger
from .http import shared_ssl_context
from .realtime_messages import (
    Ended,
    describe_failure,
    error_code,
    event_rows,
    ping,
    receive,
    send,
    upgrade_refused,
)
from .retry import backoff

__all__ = [
    "ChangeCallback",
    "ChannelState",
    "ChannelStatus",
    "RealtimeChannel",
    "RealtimeMode",
    "RealtimeTiming",
]

logger = get_logger("storybench_prompts.realtime", source="directus")

RealtimeMode = Literal["auto", "on", "off"]
"""``auto``: use realtime when the server offers it; ``on``: insist (warn while it is down);
``off``: never connect."""

ChangeCallback = Callable[[str, str, list[str | int]], None]
"""``on_change(collection, event, ids)`` with event ``create``, ``update`` or ``delete``."""

RowsCallback = Callable[[str, str, list[Mapping[str, Any]]], None]
"""``on_rows(collection, event, rows)``: each row its ``id`` and the fields subscribed to
(a delete carries keys alone)."""

CHANGE_EVENTS = frozenset({"create", "update", "delete"})


class ChannelState(StrEnum):
    OFF = "off"
    """Mode ``off``, or ``run()`` is not running."""
    CONNECTING = "connecting"
    """The first connection is being made."""
    OPEN = "open"
    """Authenticated and subscribed: changes arrive as they happen."""
    DOWN = "down"
    """The connection failed or dropped; retrying with backoff. TTLs rule meanwhile."""
    UNAVAILABLE = "unavailable"
    """Mode ``auto`` and the server does not offer realtime; checked again rarely."""


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """A snapshot of the channel, for ``status()``, ``describe()`` and ``check``."""

    state: ChannelState
    since: float
    """Clock seconds (wall clock by default) when the current state began. Retries during an
    outage do not move it: it says how long the outage has lasted."""
    reconnects: int = 0
    """How many times the channel opened again after having been open."""
    last_error: str | None = None
    """Why the last connection failed or ended; kept after recovery, for ``check``."""
    events: int = 0
    """Change events received (not counting ``init`` and pings)."""
    last_event_at: float | None = None
    unsubscribed: tuple[str, ...] = ()
    """Collections the server refused to subscribe to (missing, or not readable by the token):
    changes there are not seen, so their content follows TTLs only."""


@dataclass(frozen=True, slots=True)
class RealtimeTiming:
    """Backoff and timeouts, in seconds."""

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    """Reconnect delays are full-jitter exponential: ``rand() * min(max, initial * 2**n)``."""
    healthy_after: float = 30.0
    """A connection open at least this long resets the backoff; a server that accepts and
    then drops every connection at once is not hammered."""
    unavailable_recheck: float = 300.0
    """Mode ``auto``: how long to wait before asking again a server without realtime."""
    handshake_timeout: float = 10.0
    """Connecting, authenticating and subscribing together must finish within this."""
    idle_ping_after: float = 45.0
    """After this long without any message, send a WebSocket ping, so a silently dead
    connection (a half-open TCP link, a frozen server) is noticed within this plus
    ``ping_timeout``. Directus pings every 30 s by default, so this costs nothing then."""
    ping_timeout: float = 10.0

    def backoff(self, attempt: int, rand: Callable[[], float]) -> float:
        return backoff(attempt, initial=self.backoff_initial, maximum=self.backoff_max, rand=rand)


def _default_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, verify=shared_ssl_context())


class RealtimeChannel:
    """Directus's realtime WebSocket for a set of collections, kept open until cancelled.

    ``run()`` belongs in the owner's task group; cancelling it closes the socket cleanly.

    ``on_change(collection, event, ids)`` is called for every create/update/delete in a watched
    collection (``ids`` as Directus keys: ints for integer keys). ``on_connected()`` is called
    each time the channel is open, subscribed and listening, the first time included: what
    changed while it was down is not replayed, so the owner revalidates everything then. A
    change may be reported just before the ``on_connected`` of its connection.

    Callbacks are called from ``run()``'s task and must not block: the socket is not read (and
    Directus's pings not answered) while they run, so schedule slow work elsewhere. An exception
    from a callback is logged and does not stop the channel.

    ``clock`` (wall-clock seconds by default) stamps the status and times ``healthy_after``;
    ``sleep`` and ``rand`` drive the backoff; ``client_factory`` makes the ``httpx.AsyncClient``
    of each connection attempt (a transport for tests, proxies, TLS settings). The token is sent
    in the first WebSocket message only, never in a URL, a log, a repr or an error.
    """

    def __init__(
        self,
        base_url: str,
        token: str | SecretStr,
        collections: Iterable[str],
        *,
        on_change: ChangeCallback | None = None,
        on_connected: Callable[[], None] | None = None,
        on_rows: RowsCallback | None = None,
        on_state: Callable[[ChannelStatus], None] | None = None,
        fields: Mapping[str, list[str]] | None = None,
        mode: RealtimeMode = "auto",
        timing: RealtimeTiming | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"realtime mode must be auto, on or off, not {mode!r}")
        self._url = base_url.rstrip("/") + "/websocket"
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        if not self._token.get_secret_value():
            raise ConfigurationError("Directus token missing: realtime needs one to authenticate")
        # Directus answers and identifies each subscription by its uid; the collection name
        # is used as uid so events map back without a table.
        self._collections = tuple(dict.fromkeys(collections))
        if not self._collections and mode != "off":
            raise ValueError("a realtime channel needs at least one collection")
        self._mode: RealtimeMode = mode
        self._on_change = on_change
        self._on_connected = on_connected
        self._on_rows = on_rows
        self._on_state = on_state
        self._fields = {c: list((fields or {}).get(c, ["id"])) for c in self._collections}
        self._timing = timing or RealtimeTiming()
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._client_factory = client_factory or (
            lambda: _default_client(self._timing.handshake_timeout)
        )
        self._status = ChannelStatus(state=ChannelState.OFF, since=clock())
        self._opened_at: float | None = None
        self._ever_open = False

    @property
    def mode(self) -> RealtimeMode:
        return self._mode

    @property
    def status(self) -> ChannelStatus:
        return self._status

    def __repr__(self) -> str:
        return (
            f"RealtimeChannel(url={self._url!r}, mode={self._mode!r}, "
            f"collections={len(self._collections)}, state={self._status.state.value!r}, "
            "token=***)"
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, listen and reconnect until cancelled; return at once in mode ``off``."""
        if self._mode == "off":
            self._set(ChannelState.OFF)
            return
        attempt = 0
        outage_logged = False
        self._set(ChannelState.CONNECTING)
        try:
            while True:
                failure = await self._connect_once()
                opened_at, self._opened_at = self._opened_at, None
                if opened_at is not None:
                    outage_logged = False  # a new outage: say so once again
                    if self._clock() - opened_at >= self._timing.healthy_after:
                        attempt = 0
                if failure.refused and self._mode == "auto":
                    if self._status.state is not ChannelState.UNAVAILABLE:
                        logger.info(
                            "Directus realtime not offered (%s); caches follow their TTLs. "
                            "Checking again every %.0f s",
                            failure.reason,
                            self._timing.unavailable_recheck,
                        )
                    self._set(ChannelState.UNAVAILABLE, last_error=failure.reason)
                    outage_logged = False
                    attempt = 0
                    await self._sleep(self._timing.unavailable_recheck)
                    continue
                self._set(ChannelState.DOWN, last_error=failure.reason)
                if not outage_logged:
                    _log_outage(self._mode, failure)
                    outage_logged = True
                delay = self._timing.backoff(attempt, self._rand)
                attempt += 1
                logger.debug("Directus realtime: reconnecting in %.2f s", delay)
                await self._sleep(delay)
        finally:
            self._opened_at = None
            self._set(ChannelState.OFF)

    async def _connect_once(self) -> Ended:
        """One connection from upgrade to end; returns why it ended."""
        ended: Ended | None = None
        try:
            async with (
                self._client_factory() as client,
                aconnect_ws(
                    self._url,
                    client,
                    # Our own idle ping replaces the library's fixed-interval one: no traffic
                    # while Directus's heartbeat shows the link is alive.
                    keepalive_ping_interval_seconds=None,
                    session_class=AsyncWebSocketSession,
                ) as ws,
            ):
                # Caught inside the block: httpx-ws wraps what escapes it in an ExceptionGroup.
                try:
                    await self._converse(ws)
                except Ended as exc:
                    ended = exc
                except (HTTPXWSException, httpx.HTTPError, OSError, TimeoutError) as exc:
                    ended = Ended(self._describe(exc))
        except WebSocketUpgradeError as exc:
            return upgrade_refused(exc.response)
        except Exception as exc:  # connection refused, DNS, TLS; or a group from httpx-ws
            return Ended(self._describe(exc))
        return ended or Ended("the server closed the connection")

    async def _converse(self, ws: AsyncWebSocketSession) -> NoReturn:
        timing = self._timing
        with anyio.fail_after(timing.handshake_timeout):
            await send(ws, {"type": "auth", "access_token": self._token.get_secret_value()})
            await self._await_auth(ws)
            for collection in self._collections:
                await send(
                    ws,
                    {
                        "type": "subscribe",
                        "collection": collection,
                        "uid": collection,
                        "query": {"fields": self._fields[collection]},
                    },
                )
            known = self._status.unsubscribed
            refused = await self._await_subscriptions(ws)
        if len(refused) == len(self._collections):
            raise Ended(
                "the server refused every subscription (collections missing or not readable "
                "by the token)",
                refused=True,
            )
        if refused and tuple(refused) != known:  # said once, not at every reconnect
            logger.warning(
                "Directus realtime: no subscription to %s (missing, or not readable by the "
                "token); changes there follow TTLs only",
                ", ".join(refused),
            )
        self._opened()
        while True:
            with anyio.move_on_after(timing.idle_ping_after) as idle:
                message = await receive(ws)
            if idle.cancelled_caught:
                await ping(ws, self._timing.ping_timeout, self._timing.idle_ping_after)
            else:
                await self._handle(ws, message)

    async def _await_auth(self, ws: AsyncWebSocketSession) -> None:
        while True:
            message = await receive(ws)
            kind = message.get("type")
            if kind == "ping":
                await send(ws, {"type": "pong"})
            elif kind == "auth":
                if message.get("status") == "ok":
                    return
                raise Ended(f"authentication refused ({error_code(message)})", auth=True)

    async def _await_subscriptions(self, ws: AsyncWebSocketSession) -> list[str]:
        pending = set(self._collections)
        refused: list[str] = []
        while pending:
            message = await receive(ws)
            uid = message.get("uid")
            kind = message.get("type")
            if kind == "subscribe" and message.get("status") == "error" and uid in pending:
                pending.discard(uid)
                refused.append(uid)
                logger.debug("subscription to %s refused: %s", uid, error_code(message))
            elif kind == "subscription" and message.get("event") == "init" and uid in pending:
                pending.discard(uid)
            else:
                await self._handle(ws, message)
        self._status = replace(self._status, unsubscribed=tuple(refused))
        return refused

    async def _handle(self, ws: AsyncWebSocketSession, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            await send(ws, {"type": "pong"})
        elif kind == "subscription":
            event = message.get("event")
            collection = message.get("uid")
            if (
                isinstance(event, str)
                and isinstance(collection, str)
                and event in CHANGE_EVENTS
                and collection in self._collections
            ):
                self._deliver(collection, event, event_rows(message.get("data")))
        elif kind == "auth" and message.get("status") == "error":
            # An expiring token runs out mid-session; reconnecting authenticates again.
            raise Ended(f"authentication ended ({error_code(message)})", auth=True)
        elif kind == "subscribe" and message.get("status") == "error":
            logger.warning(
                "Directus realtime: subscription to %s ended (%s)",
                message.get("uid"),
                error_code(message),
            )

    def _deliver(self, collection: str, event: str, rows: list[Mapping[str, Any]]) -> None:
        now = self._clock()
        self._status = replace(self._status, events=self._status.events + 1, last_event_at=now)
        try:
            if self._on_change is not None:
                self._on_change(collection, event, [row["id"] for row in rows])
            if self._on_rows is not None:
                self._on_rows(collection, event, rows)
        except Exception:
            logger.exception("realtime on_change callback failed for %s %s", collection, event)

    def _opened(self) -> None:
        if self._ever_open:
            self._status = replace(self._status, reconnects=self._status.reconnects + 1)
        if self._status.state in (ChannelState.DOWN, ChannelState.UNAVAILABLE):
            logger.info("Directus realtime connected again")
        elif not self._ever_open:
            logger.info(
                "Directus realtime connected; watching %d collection(s)",
                len(self._collections) - len(self._status.unsubscribed),
            )
        self._ever_open = True
        self._opened_at = self._clock()
        self._set(ChannelState.OPEN)
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:
                logger.exception("realtime on_connected callback failed")

    def _describe(self, exc: BaseException) -> str:
        return describe_failure(
            exc,
            url=self._url,
            handshake_timeout=self._timing.handshake_timeout,
            secret=self._token.get_secret_value(),
        )

    def _set(self, state: ChannelState, *, last_error: str | None = None) -> None:
        status = self._status
        moved = state is not status.state
        if moved:
            status = replace(status, state=state, since=self._clock())
        if last_error is not None:
            status = replace(status, last_error=last_error)
        self._status = status
        if moved and self._on_state is not None:
            self._on_state(status)


def _log_outage(mode: RealtimeMode, failure: Ended) -> None:
    # Mode "on" asked for realtime, so losing it is worth a warning; in "auto" the TTLs
    # were always the plan B. A refused token needs a person either way.
    level = logging.WARNING if mode == "on" or failure.auth else logging.INFO
    logger.log(
        level,
        "Directus realtime down (%s); caches follow their TTLs until it is back, "
        "retrying with backoff",
        failure.reason,
    )
