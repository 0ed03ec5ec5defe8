"""``watch``: keep the mirror in step with Directus until stopped."""

from __future__ import annotations

import signal

import anyio
import click

from .app import KIND_CHOICES, State, cli, kinds_for, run_command, stack_for


@cli.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=1.0),
    default=300.0,
    show_default=True,
    help="Seconds between full reconciles (besides those that changes trigger).",
)
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="all", show_default=True)
@click.pass_obj
def watch(state: State, interval: float, kind: str) -> None:
    """Keep the mirror in step with Directus until stopped (Ctrl-C or SIGTERM).

    A full reconcile at start, after every reconnection of Directus's realtime channel, on
    every change it reports, and every --interval seconds; one line per change applied.
    """
    import datetime

    from ..ops.watch import MirrorWatcher, WatchedKind

    kinds = kinds_for(kind)

    def report(line: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
        state.data(f"{now} {line}")

    async def run() -> None:
        async with stack_for(state, kinds) as views:
            watcher = MirrorWatcher(
                [WatchedKind(k, s, m) for k, s, m in views],
                report=report,
                interval=interval,
                concurrency=state.settings.concurrency,
            )
            async with anyio.create_task_group() as tg:
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
                tg.start_soon(watcher.run)
                # SIGINT and SIGTERM cancel the work at an await, so a stop never leaves a
                # version half-written (each write is whole or not at all).
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        report(f"stopping ({signal.Signals(signum).name})")
                        tg.cancel_scope.cancel()
                        break

    report(
        f"watching {', '.join(k.noun + 's' for k in kinds)}; full reconcile every {interval:g} s"
    )
    run_command(state, "watch", run)
    report("stopped")
