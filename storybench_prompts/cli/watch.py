"""``watch``: keep the mirror in step with Directus until stopped."""

from __future__ import annotations

import datetime
import signal
import sys
from typing import TYPE_CHECKING, Any

import anyio
import click

from .._defaults import DEFAULT_WATCH_INTERVAL
from .._exceptions import ConfigurationError, StorybenchPromptsError
from .app import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    KIND_CHOICES,
    Seconds,
    State,
    cli,
    fail,
    first_line,
    hint_for,
    kinds_for,
    require_directus,
    setting_error,
    stack_for,
    usage_error,
)

if TYPE_CHECKING:
    from ..observability.prometheus import MetricsServer
    from ..observability.watching import WatchObserver
    from ..ops.watch import WatchEvent


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@cli.command()
@click.option(
    "--interval",
    type=Seconds(minimum=1.0),
    default=DEFAULT_WATCH_INTERVAL,
    show_default=True,
    help="Seconds between full reconciles (besides those that changes trigger).",
)
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="all", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON lines).")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (0: any free one); needs the otel extra.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address the metrics page listens on (0.0.0.0: every interface).",
)
@click.pass_obj
def watch(
    state: State,
    interval: float,
    kind: str,
    as_json: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Keep the mirror in step with Directus until stopped (Ctrl-C or SIGTERM).

    A full reconcile at start, after every reconnection of Directus's realtime channel, on
    every change it reports, and every --interval seconds; one line per change applied.
    A rejected token stops it: exit 2 when it is rejected from the start, 1 when it was
    accepted before (revoked while watching). Ctrl-C exits 130, SIGTERM 0.

    With --metrics-port, http://HOST:PORT/metrics serves its requests to Directus, Directus's
    state, and the changes applied, in Prometheus text (see docs/observability.md).
    """
    require_directus(state)
    from ..ops.watch import MirrorWatcher, WatchedKind

    kinds = kinds_for(kind)
    metrics = _metrics(state, metrics_host, metrics_port)

    def emit(event: str, line: str, **fields: Any) -> None:
        now = _now()
        if as_json:
            state.json({"time": now.isoformat(), "event": event, **fields}, lines=True)
        else:
            state.data(f"{now:%H:%M:%S} {line}")

    def on_event(event: WatchEvent) -> None:
        if observer is not None:
            observer.applied(event)
        fields = event.as_json()
        emit(fields.pop("event"), event.line, **fields)

    observer = _observer(state, metrics is not None)

    stopped_by: list[str] = []
    watchers: list[MirrorWatcher] = []
    fatal: list[StorybenchPromptsError] = []

    async def run() -> None:
        async with stack_for(state, kinds) as views:
            watched = [
                WatchedKind(k, observer.source(k, s) if observer is not None else s, m)
                for k, s, m in views
            ]
            watcher = MirrorWatcher(
                watched,
                report=lambda line: emit("report", line),
                interval=interval,
                concurrency=state.settings.concurrency,
                on_event=on_event,
            )
            watchers.append(watcher)
            async with anyio.create_task_group() as tg:

                async def watching() -> None:
                    try:
                        await watcher.run()
                    except StorybenchPromptsError as exc:  # one retrying cannot fix
                        fatal.append(exc)
                        tg.cancel_scope.cancel()

                if state.settings.realtime != "off" and state.settings.directus_token:
                    from ..sources.realtime import RealtimeChannel

                    channel = RealtimeChannel(
                        views[0][1].url,
                        state.settings.directus_token,
                        [c for k in kinds for c in k.related_collections],
                        on_change=lambda collection, _e, _i: watcher.changed(collection),
                        on_connected=lambda: watcher.changed(None),
                        mode=state.settings.realtime,
                    )
                    tg.start_soon(channel.run)
                tg.start_soon(watching)
                # SIGINT and SIGTERM cancel the work at an await, so a stop never leaves a
                # version half-written (each write is whole or not at all).
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        stopped_by.append(name)
                        emit("stopping", f"stopping ({name})", signal=name)
                        tg.cancel_scope.cancel()
                        break

    emit(
        "watching",
        f"watching {', '.join(k.noun + 's' for k in kinds)}; full reconcile every {interval:g} s",
        kinds=[k.name for k in kinds],
        interval=interval,
    )
    if metrics is not None:
        emit("metrics", f"metrics at {metrics.url}", url=metrics.url)
    try:
        anyio.run(run)
    except StorybenchPromptsError as exc:
        fail(state, "watch", exc)
    finally:
        if metrics is not None:
            metrics.close()
    if fatal:
        error = fatal[0]
        revoked = bool(watchers and watchers[0].succeeded) and setting_error(error) is not None
        emit("stopped", f"stopped: {first_line(error)}", error=first_line(error))
        if not revoked:
            fail(state, "watch", error)  # wrong from the start: a setting error, exit 2
        hint = hint_for(error)
        state.warn(
            f"error: watch: stopped, the token accepted before is now rejected: "
            f"{first_line(error)}"
            + (f" ({hint})" if hint and hint not in first_line(error) else "")
        )
        sys.exit(EXIT_FAILURE)
    emit("stopped", "stopped")
    sys.exit(EXIT_INTERRUPTED if stopped_by == ["SIGINT"] else EXIT_OK)


def _metrics(state: State, host: str, port: int | None) -> MetricsServer | None:
    """The metrics page asked for, started before anything else (a busy port exits 2)."""
    if port is None:
        return None
    from ..observability.prometheus import serve_metrics

    try:
        return serve_metrics(host, port)
    except ConfigurationError as exc:
        usage_error(state, f"--metrics-port: {exc}")


def _observer(state: State, serving_metrics: bool) -> WatchObserver | None:
    """What turns the watch's work into events, when something records them: OpenTelemetry
    (always with a metrics page; else as STORYBENCH_PROMPTS_OTEL says)."""
    from ..observability.otel import otel_hook

    try:
        hook = otel_hook("on" if serving_metrics else state.settings.otel)
    except ConfigurationError as exc:
        usage_error(state, str(exc))
    if hook is None:
        return None
    from .._events import Hooks
    from ..observability.watching import WatchObserver

    return WatchObserver(Hooks([hook]))
