"""The realtime channel against a Directus-like WebSocket server on loopback.

The fake server below is built on wsproto (which httpx-ws itself depends on) and an anyio TCP
listener: it speaks the real WebSocket protocol over a real socket, so the channel's client code
runs unchanged. It holds the conversation Directus 12.4 holds (auth, subscribe, init, change
events, ping/pong; see ``storybench_prompts/_realtime.py``) and lets a test refuse the upgrade,
stay silent, ignore WebSocket pings, or drop connections. Backoff and clocks are injected, so
delays are asserted exactly; nothing here sleeps to measure time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from pydantic import SecretStr
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from storybench_prompts._exceptions import ConfigurationError
from storybench_prompts.sources.realtime import (
    ChannelState,
    ChannelStatus,
    RealtimeChannel,
    RealtimeMode,
    RealtimeTiming,
)

pytestmark = pytest.mark.anyio

TOKEN = "fake-token-0123456789"
LOGGER = "storybench_prompts.realtime"

# -- a Directus-like realtime server --------------------------------------------------------

Message = dict[str, Any]


@dataclass
class FakeSocket:
    """The server side of one client connection."""

    stream: anyio.abc.SocketStream
    ws: WSConnection
    answer_pings: bool
    received: list[Message] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    pongs: int = 0
    ws_pings: int = 0
    close_code: int | None = None
    closed: bool = False

    def __post_init__(self) -> None:
        self._inbox_in, self._inbox = anyio.create_memory_object_stream[Message | None](1000)
        self._lock = anyio.Lock()

    async def send(self, message: Message) -> None:
        await self._write(self.ws.send(TextMessage(data=json.dumps(message))))

    async def recv(self) -> Message | None:
        """The client's next message; None once the connection is over."""
        try:
            return await self._inbox.receive()
        except anyio.EndOfStream:
            return None

    async def close(self, code: int = 1000) -> None:
        with contextlib.suppress(Exception):
            await self._write(self.ws.send(CloseConnection(code=code)))
        await self.drop()

    async def drop(self) -> None:
        """End the TCP connection without a closing handshake (a crash, a cut cable)."""
        self.closed = True
        with contextlib.suppress(Exception):
            await self.stream.aclose()
        self._inbox_in.close()

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            await self.stream.send(data)

    async def read_loop(self) -> None:
        try:
            while True:
                data = await self.stream.receive()
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, TextMessage):
                        message = json.loads(event.data)
                        self.received.append(message)
                        await self._inbox_in.send(message)
                    elif isinstance(event, Ping):
                        self.ws_pings += 1
                        if self.answer_pings:
                            await self._write(self.ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        self.close_code = event.code
                        with contextlib.suppress(Exception):
                            await self._write(self.ws.send(event.response()))
                        await self.drop()
                        return
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            self.closed = True
            self._inbox_in.close()


@dataclass
class FakeDirectus:
    """Accepts WebSocket upgrades on ``/websocket`` and answers like Directus.

    ``reject``: answer every upgrade with this HTTP status instead (404 is Directus with
    realtime off). ``silent``: accept the upgrade and never answer. ``collections``: those that
    may be subscribed (others get Directus's FORBIDDEN error). ``close_after_subscribe``: close
    each connection once it has answered that many subscriptions.
    """

    token: str = "fake-token-0123456789"
    collections: tuple[str, ...] = ("prompts", "prompt_sequences")
    reject: int | None = None
    silent: bool = False
    answer_pings: bool = True
    close_after_subscribe: int = 0
    sockets: list[FakeSocket] = field(default_factory=list)
    upgrade_paths: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_sockets(self) -> list[FakeSocket]:
        return [s for s in self.sockets if not s.closed]

    async def broadcast(self, collection: str, event: str, data: Any) -> None:
        """A change event to every open connection subscribed to ``collection``."""
        for sock in self.open_sockets:
            if collection in sock.subscriptions:
                await sock.send(
                    {"type": "subscription", "event": event, "data": data, "uid": collection}
                )

    async def ping(self) -> None:
        for sock in self.open_sockets:
            await sock.send({"type": "ping"})

    async def _serve_one(self, stream: anyio.abc.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        request: Request | None = None
        try:
            while request is None:
                ws.receive_data(await stream.receive())
                for event in ws.events():
                    if isinstance(event, Request):
                        request = event
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return
        self.upgrade_paths.append(request.target)
        if self.reject is not None:
            body = b'{"errors":[{"message":"Route /websocket doesn\'t exist."}]}'
            await stream.send(
                ws.send(
                    RejectConnection(
                        status_code=self.reject,
                        headers=[(b"content-length", str(len(body)).encode())],
                        has_body=True,
                    )
                )
            )
            await stream.send(ws.send(RejectData(data=body, body_finished=True)))
            await stream.aclose()
            return
        await stream.send(ws.send(AcceptConnection()))
        sock = FakeSocket(stream, ws, answer_pings=self.answer_pings)
        self.sockets.append(sock)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sock.read_loop)
                if not self.silent:
                    await self._directus(sock)
                else:
                    while await sock.recv() is not None:
                        pass
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await sock.drop()
            sock._inbox.close()

    async def _directus(self, sock: FakeSocket) -> None:
        auth = await sock.recv()
        if auth is None:
            return
        if auth.get("type") != "auth" or auth.get("access_token") != self.token:
            await sock.send(
                {
                    "type": "auth",
                    "status": "error",
                    "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
                }
            )
            await sock.close()
            return
        await sock.send({"type": "auth", "status": "ok"})
        answered = 0
        while (message := await sock.recv()) is not None:
            kind = message.get("type")
            if kind == "subscribe":
                uid = message.get("uid")
                if message.get("collection") in self.collections:
                    sock.subscriptions.append(str(uid))
                    data = [{"id": 1}, {"id": 2}]
                    await sock.send(
                        {"type": "subscription", "event": "init", "data": data, "uid": uid}
                    )
                else:
                    await sock.send(
                        {
                            "type": "subscribe",
                            "status": "error",
                            "error": {"code": "FORBIDDEN", "message": "no permission"},
                            "uid": uid,
                        }
                    )
                answered += 1
                if answered == self.close_after_subscribe:
                    await sock.close()
                    return
            elif kind == "pong":
                sock.pongs += 1


@contextlib.asynccontextmanager
async def serving(server: FakeDirectus) -> AsyncIterator[FakeDirectus]:
    """Listen on a free loopback port for the block, then stop every connection."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server._serve_one)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


# -- helpers --------------------------------------------------------------------------------


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Stop(Exception):
    """Raised by the injected sleep to end ``run()`` after a number of waits."""


@dataclass
class Sleeps:
    """The channel's sleep: records each delay and the status at that moment, returns at once,
    and stops the channel after ``stop_after`` waits."""

    stop_after: int = 1_000_000
    delays: list[float] = field(default_factory=list)
    statuses: list[ChannelStatus] = field(default_factory=list)
    channel: RealtimeChannel | None = None

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        assert self.channel is not None
        self.statuses.append(self.channel.status)
        if len(self.delays) >= self.stop_after:
            raise Stop
        await anyio.lowlevel.checkpoint()


@dataclass
class Recorder:
    changes: list[tuple[str, str, list[str | int]]] = field(default_factory=list)
    connected: int = 0

    def on_change(self, collection: str, event: str, ids: list[str | int]) -> None:
        self.changes.append((collection, event, ids))

    def on_connected(self) -> None:
        self.connected += 1


def make_channel(
    url: str,
    recorder: Recorder,
    *,
    token: str | SecretStr = TOKEN,
    collections: tuple[str, ...] = ("prompts", "prompt_sequences"),
    mode: RealtimeMode = "auto",
    sleeps: Sleeps | None = None,
    **options: Any,
) -> RealtimeChannel:
    channel = RealtimeChannel(
        url,
        token,
        collections,
        on_change=recorder.on_change,
        on_connected=recorder.on_connected,
        mode=mode,
        sleep=sleeps or Sleeps(),
        **options,
    )
    if sleeps is not None:
        sleeps.channel = channel
    else:
        channel._sleep.channel = channel  # type: ignore[attr-defined]
    return channel


@contextlib.asynccontextmanager
async def running(channel: RealtimeChannel) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.run)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_open(channel: RealtimeChannel) -> Callable[[], bool]:
    return lambda: channel.status.state is ChannelState.OPEN


# -- the conversation -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/directus"])
async def test_authenticates_first_then_subscribes_each_collection(suffix: str) -> None:
    rec = Recorder()
    async with serving(FakeDirectus()) as server:
        channel = make_channel(server.url + suffix, rec)
        async with running(channel):
            await wait_for(is_open(channel))
            sock = server.sockets[0]
            assert sock.received == [
                {"type": "auth", "access_token": TOKEN},
                {
                    "type": "subscribe",
                    "collection": "prompts",
                    "uid": "prompts",
                    "query": {"fields": ["id"]},
                },
                {
                    "type": "subscribe",
                    "collection": "prompt_sequences",
                    "uid": "prompt_sequences",
                    "query": {"fields": ["id"]},
                },
            ]
            assert rec.connected == 1
            assert rec.changes == []  # the init events are not changes
            assert channel.status.unsubscribed == ()
        assert server.upgrade_paths == [suffix.rstrip("/") + "/websocket"]
    assert channel.status.state is ChannelState.OFF


async def test_change_events_reach_on_change_with_their_ids() -> None:
    rec = Recorder()
    clock = FakeClock(5_000.0)
    async with serving(FakeDirectus()) as server:
        channel = make_channel(server.url, rec, clock=clock)
        async with running(channel):
            await wait_for(is_open(channel))
            assert channel.status.events == 0
            assert channel.status.last_event_at is None
            clock.now = 5_042.0
            await server.broadcast("prompts", "update", [{"id": 5}])
            await server.broadcast("prompts", "create", [{"id": 6}, {"id": 7}])
            # Directus sends a deleted item's key alone, as a string.
            await server.broadcast("prompt_sequences", "delete", ["8", "9"])
            await server.broadcast("prompts", "delete", ["0b7f-uuid"])
            # Neither an init, nor an event for a collection not asked for, is a change.
            await server.broadcast("prompts", "init", [{"id": 1}])
            await server.sockets[0].send(
                {"type": "subscription", "event": "update", "data": [{"id": 1}], "uid": "x"}
            )
            await server.broadcast("prompts", "update", [{"id": 10}])
            await wait_for(lambda: len(rec.changes) == 5)
    assert rec.changes == [
        ("prompts", "update", [5]),
        ("prompts", "create", [6, 7]),
        ("prompt_sequences", "delete", [8, 9]),
        ("prompts", "delete", ["0b7f-uuid"]),
        ("prompts", "update", [10]),
    ]
    assert channel.status.events == 5
    assert channel.status.last_event_at == 5_042.0


async def test_directus_pings_are_answered_with_pongs_and_nothing_else_is_sent() -> None:
    rec = Recorder()
    async with serving(FakeDirectus()) as server:
        channel = make_channel(server.url, rec)
        async with running(channel):
            await wait_for(is_open(channel))
            sock = server.sockets[0]
            for _ in range(3):
                await server.ping()
            await wait_for(lambda: sock.pongs == 3)
            await server.broadcast("prompts", "update", [{"id": 1}])
            await wait_for(lambda: len(rec.changes) == 1)
            # After auth and the two subscriptions: pongs, and no request of any kind.
            assert sock.received[3:] == [{"type": "pong"}] * 3
            assert sock.ws_pings == 0


async def test_a_quiet_connection_is_probed_with_a_ping_and_kept_when_answered() -> None:
    rec = Recorder()
    timing = RealtimeTiming(idle_ping_after=0.05, ping_timeout=2.0)
    async with serving(FakeDirectus(answer_pings=True)) as server:
        channel = make_channel(server.url, rec, timing=timing)
        async with running(channel):
            await wait_for(is_open(channel))
            await wait_for(lambda: server.sockets[0].ws_pings >= 3)
            assert len(server.sockets) == 1
            assert channel.status.state is ChannelState.OPEN
            assert channel.status.reconnects == 0


async def test_a_silently_dead_connection_is_noticed_and_replaced() -> None:
    rec = Recorder()
    timing = RealtimeTiming(idle_ping_after=0.05, ping_timeout=0.05)
    async with serving(FakeDirectus(answer_pings=False)) as server:
        channel = make_channel(server.url, rec, timing=timing)
        async with running(channel):
            await wait_for(lambda: channel.status.reconnects == 1)
            await wait_for(is_open(channel))
            assert rec.connected == 2
            assert channel.status.last_error is not None
            assert "no answer to a ping" in channel.status.last_error


# -- reconnecting ---------------------------------------------------------------------------


async def test_reconnects_with_exponential_backoff_and_full_jitter() -> None:
    rec = Recorder()
    sleeps = Sleeps(stop_after=6)
    clock = FakeClock()
    timing = RealtimeTiming(backoff_initial=1.0, backoff_max=8.0)
    channel = make_channel(
        f"http://127.0.0.1:{closed_port()}",
        rec,
        sleeps=sleeps,
        timing=timing,
        rand=lambda: 0.5,
        clock=clock,
        mode="on",
    )
    with pytest.raises(Stop):
        await channel.run()
    # rand() * min(max, initial * 2**attempt): 1, 2, 4, 8, 8, 8 halved.
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert {s.state for s in sleeps.statuses} == {ChannelState.DOWN}
    # Retries do not move `since`: it tells how long the outage has lasted.
    assert {s.since for s in sleeps.statuses} == {1_000.0}
    assert "cannot connect" in (sleeps.statuses[0].last_error or "")
    assert rec.connected == 0


async def test_backoff_resets_only_after_a_healthy_connection() -> None:
    rec = Recorder()
    clock = FakeClock()
    sleeps = Sleeps(stop_after=5)
    timing = RealtimeTiming(backoff_initial=1.0, backoff_max=64.0, healthy_after=30.0)

    def on_connected() -> None:
        rec.on_connected()
        if rec.connected == 3:
            clock.now += 30.0  # the third connection stays up long enough to count as healthy

    async with serving(FakeDirectus(close_after_subscribe=2)) as server:
        channel = make_channel(
            server.url, rec, sleeps=sleeps, timing=timing, rand=lambda: 1.0, clock=clock
        )
        channel._on_connected = on_connected
        with pytest.raises(Stop):
            await channel.run()
    # Each connection opens and is closed by the server right away. Short-lived ones keep
    # the backoff growing; the healthy third one starts it over (its delay is the first again).
    assert sleeps.delays == [1.0, 2.0, 1.0, 2.0, 4.0]
    assert rec.connected == 5
    assert channel.status.reconnects == 4


async def test_a_dropped_connection_reconnects_and_reports_connected_again() -> None:
    rec = Recorder()
    async with serving(FakeDirectus()) as server:
        channel = make_channel(server.url, rec)
        async with running(channel):
            await wait_for(is_open(channel))
            assert rec.connected == 1
            await server.sockets[0].drop()  # no closing handshake, as when a server dies
            await wait_for(lambda: rec.connected == 2)
            assert channel.status.state is ChannelState.OPEN
            assert channel.status.reconnects == 1
            assert channel.status.last_error is not None
            # Changes go on arriving on the new connection.
            await server.broadcast("prompts", "update", [{"id": 3}])
            await wait_for(lambda: rec.changes == [("prompts", "update", [3])])
    assert len(server.sockets) == 2


async def test_cancelling_run_closes_the_socket_with_a_normal_close() -> None:
    rec = Recorder()
    async with serving(FakeDirectus()) as server:
        channel = make_channel(server.url, rec)
        async with running(channel):
            await wait_for(is_open(channel))
        sock = server.sockets[0]
        await wait_for(lambda: sock.closed)
        assert sock.close_code == 1000
    assert channel.status.state is ChannelState.OFF


async def test_no_answer_to_auth_within_the_handshake_timeout_is_an_outage() -> None:
    rec = Recorder()
    sleeps = Sleeps(stop_after=2)
    timing = RealtimeTiming(handshake_timeout=0.1)
    async with serving(FakeDirectus(silent=True)) as server:
        channel = make_channel(server.url, rec, sleeps=sleeps, timing=timing)
        with pytest.raises(Stop):
            await channel.run()
    assert len(server.sockets) == 2
    assert sleeps.statuses[0].state is ChannelState.DOWN
    assert sleeps.statuses[0].last_error == "no answer within 0.1 s"
    assert rec.connected == 0


# -- modes ----------------------------------------------------------------------------------


async def test_mode_off_returns_at_once_without_connecting() -> None:
    rec = Recorder()
    async with serving(FakeDirectus()) as server:
        channel = make_channel(server.url, rec, mode="off")
        with anyio.fail_after(1):
            await channel.run()
        await anyio.sleep(0.05)
        assert server.upgrade_paths == []
    assert channel.status.state is ChannelState.OFF
    assert rec.connected == 0


async def test_auto_on_a_server_without_realtime_is_unavailable_and_rechecks_rarely(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rec = Recorder()
    sleeps = Sleeps(stop_after=3)
    async with serving(FakeDirectus(reject=404)) as server:
        channel = make_channel(server.url, rec, sleeps=sleeps)
        with pytest.raises(Stop):
            await channel.run()
    assert len(server.upgrade_paths) == 3
    assert sleeps.delays == [300.0, 300.0, 300.0]
    assert {s.state for s in sleeps.statuses} == {ChannelState.UNAVAILABLE}
    assert "HTTP 404" in (sleeps.statuses[0].last_error or "")
    assert "WEBSOCKETS_ENABLED" in (sleeps.statuses[0].last_error or "")
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelno for r in records] == [logging.INFO]  # once, and not a warning
    assert "not offered" in records[0].getMessage()


async def test_auto_with_every_subscription_refused_is_unavailable() -> None:
    rec = Recorder()
    sleeps = Sleeps(stop_after=1)
    async with serving(FakeDirectus(collections=())) as server:
        channel = make_channel(server.url, rec, sleeps=sleeps)
        with pytest.raises(Stop):
            await channel.run()
    assert sleeps.statuses[0].state is ChannelState.UNAVAILABLE
    assert "refused every subscription" in (sleeps.statuses[0].last_error or "")
    assert rec.connected == 0


async def test_a_refused_subscription_is_listed_and_the_others_are_watched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    rec = Recorder()
    async with serving(FakeDirectus(collections=("prompts",))) as server:
        channel = make_channel(server.url, rec, collections=("prompts", "evaluation_versions"))
        async with running(channel):
            await wait_for(is_open(channel))
            assert channel.status.unsubscribed == ("evaluation_versions",)
            await server.broadcast("prompts", "update", [{"id": 2}])
            await wait_for(lambda: len(rec.changes) == 1)
            await server.sockets[0].drop()
            await wait_for(lambda: rec.connected == 2)
            assert channel.status.unsubscribed == ("evaluation_versions",)
    # Said once, not again at each reconnect.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "evaluation_versions" in warnings[0]


async def test_mode_on_retries_with_backoff_and_warns_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rec = Recorder()
    sleeps = Sleeps(stop_after=4)
    timing = RealtimeTiming(backoff_initial=1.0, backoff_max=100.0)
    async with serving(FakeDirectus(reject=404)) as server:
        channel = make_channel(
            server.url, rec, mode="on", sleeps=sleeps, timing=timing, rand=lambda: 1.0
        )
        with pytest.raises(Stop):
            await channel.run()
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0]
    assert {s.state for s in sleeps.statuses} == {ChannelState.DOWN}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "HTTP 404" in warnings[0].getMessage()


async def test_each_new_outage_is_logged_once_and_each_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    rec = Recorder()
    sleeps = Sleeps(stop_after=3)
    async with serving(FakeDirectus(close_after_subscribe=2)) as server:
        channel = make_channel(server.url, rec, mode="on", sleeps=sleeps)
        with pytest.raises(Stop):
            await channel.run()
    messages = [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records]
    down = (logging.WARNING, "Directus realtime down")
    again = (logging.INFO, "Directus realtime connected again")
    first = (logging.INFO, "Directus realtime connected; watching 2 collection(s)")
    assert messages == [first, down, again, down, again, down]


async def test_a_refused_token_is_an_outage_retried_with_backoff_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    rec = Recorder()
    sleeps = Sleeps(stop_after=3)
    async with serving(FakeDirectus(token="another-token")) as server:
        channel = make_channel(server.url, rec, sleeps=sleeps, rand=lambda: 1.0)
        with pytest.raises(Stop):
            await channel.run()
    assert len(server.sockets) == 3
    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert {s.state for s in sleeps.statuses} == {ChannelState.DOWN}
    assert sleeps.statuses[0].last_error == "authentication refused (AUTH_FAILED)"
    # Even in mode auto: a token that is refused needs a person.
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


# -- callbacks and secrets ------------------------------------------------------------------


async def test_a_failing_callback_is_logged_and_the_channel_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    seen: list[list[str | int]] = []

    def on_change(collection: str, event: str, ids: list[str | int]) -> None:
        seen.append(ids)
        if len(seen) == 1:
            raise RuntimeError("owner bug")

    async with serving(FakeDirectus()) as server:
        channel = RealtimeChannel(server.url, TOKEN, ["prompts"], on_change=on_change)
        async with running(channel):
            await wait_for(is_open(channel))
            await server.broadcast("prompts", "update", [{"id": 1}])
            await server.broadcast("prompts", "update", [{"id": 2}])
            await wait_for(lambda: len(seen) == 2)
            assert channel.status.state is ChannelState.OPEN
    assert seen == [[1], [2]]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None


async def test_the_token_is_never_in_repr_status_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-token-that-must-not-leak"
    texts: list[str] = []

    def leaky_client() -> httpx.AsyncClient:
        # A transport whose error message carries the token, as a careless library might.
        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ReadError(f"reading failed for {secret}", request=request)

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async with serving(FakeDirectus()) as server:
        cases: list[tuple[str | SecretStr, dict[str, Any]]] = [
            (secret, {}),  # the fake server expects another token: auth refused
            (SecretStr(secret), {}),
            (secret, {"client_factory": leaky_client}),
        ]
        for token, options in cases:
            sleeps = Sleeps(stop_after=2)
            channel = make_channel(server.url, Recorder(), token=token, sleeps=sleeps, **options)
            texts.append(repr(channel))
            with pytest.raises(Stop):
                await channel.run()
            texts += [repr(s) for s in sleeps.statuses]
            texts.append(repr(channel.status))
        # The token was sent where it belongs: in the auth message.
        assert server.sockets[0].received[0] == {"type": "auth", "access_token": secret}
    # The transport's message is kept, with the token masked.
    assert "ReadError: reading failed for ***" in texts[-1]
    texts += [r.getMessage() for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    assert texts
    assert all(secret not in text for text in texts)
    assert "token=***" in texts[0]


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="token missing"):
        RealtimeChannel("http://127.0.0.1:1", SecretStr(""), ["prompts"], on_change=print)


def test_a_mode_outside_auto_on_off_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, on or off"):
        RealtimeChannel(
            "http://127.0.0.1:1",
            TOKEN,
            ["prompts"],
            on_change=Recorder().on_change,
            mode="sometimes",  # type: ignore[arg-type]
        )
