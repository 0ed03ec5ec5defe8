"""OpenTelemetry metrics and traces from the layer's events (see ``docs/observability.md``).

:class:`OTelHook` is a hook: installed on a stack, it turns each event into a measurement on
OpenTelemetry instruments and each whole Directus fetch into a span. By default it uses the
*global* meter and tracer providers, so whatever the application set up (OTLP, Prometheus,
the console) receives it; before the application sets them, OpenTelemetry's proxies hold the
instruments and forward to the real providers once they are set.

:func:`otel_hook` reads the ``STORYBENCH_PROMPTS_OTEL`` setting (``auto``, ``on``, ``off``).
This module does not import OpenTelemetry until an :class:`OTelHook` is built, so ``off`` costs
nothing and ``auto`` without the package costs one ``find_spec``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from .._events import (
    ChannelChanged,
    ContentChanged,
    Event,
    LookupFailed,
    MirrorWritten,
    OriginAttempt,
    OriginFetched,
    OriginState,
    Served,
    StateChanged,
)
from .._exceptions import ConfigurationError
from .._logs import get_logger
from .._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import TracerProvider

__all__ = [
    "DURATION_BUCKETS",
    "FETCH_SPAN",
    "LOOKUPS",
    "SCOPE",
    "OTelHook",
    "otel_hook",
]

SCOPE = "storybench_prompts"
"""The instrumentation scope (meter and tracer name)."""

LOOKUPS = "storybench_prompts.lookups"
ORIGIN_ATTEMPTS = "storybench_prompts.origin.attempts"
ORIGIN_DURATION = "storybench_prompts.origin.duration"
ORIGIN_UP = "storybench_prompts.origin.up"
CONTENT_CHANGES = "storybench_prompts.content.changes"
MIRROR_WRITES = "storybench_prompts.mirror.writes"
FETCH_SPAN = "storybench_prompts.fetch"

DURATION_BUCKETS: Sequence[float] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Bucket boundaries (seconds) advised for ``storybench_prompts.origin.duration``: a warm
Directus answers in milliseconds, a serverless cold start takes tens of seconds. Applied by
OpenTelemetry 1.30 and later; older SDKs use their default boundaries unless a View sets them."""

_NS = 1_000_000_000

logger = get_logger(__name__)

Mode = Literal["auto", "on", "off"]
SETTING = "STORYBENCH_PROMPTS_OTEL"
INSTALL = "pip install 'storybench-prompts[otel]'"


class OTelHook:
    """A hook recording every event on OpenTelemetry instruments (one meter and one tracer,
    scope ``storybench_prompts``).

    ``meter_provider`` and ``tracer_provider`` default to the global ones. Metrics:

    - ``storybench_prompts.lookups`` (counter; ``kind``, ``source``, ``outcome``): every answer
      (:class:`Served`: ``outcome`` is its ``how``; fresh cache hits through
      :meth:`hit_counter`) and every failed lookup (:class:`LookupFailed`: ``not_found`` or
      ``error``).
    - ``storybench_prompts.origin.attempts`` (counter; ``kind``, ``outcome``, ``error_kind``
      only when the attempt failed) and ``storybench_prompts.origin.duration`` (histogram,
      seconds; ``kind``, ``outcome``): each request to Directus.
    - ``storybench_prompts.origin.up`` (observable gauge): 1 while Directus's last state is
      valid, 0 while interrupted; nothing before the first :class:`StateChanged`.
    - ``storybench_prompts.content.changes`` (counter; ``kind``, ``via``): versions whose
      content changed under the same number (a :class:`ContentChanged` with an ``old_hash``;
      one for a version seen the first time is not counted).
    - ``storybench_prompts.mirror.writes`` (counter; ``kind``, ``outcome``).

    Traces: one span ``storybench_prompts.fetch`` per :class:`OriginFetched`, from its
    ``started_at`` for its ``duration``, with ``kind``, ``version`` (absent for the latest),
    ``attempts``, ``outcome`` and, when set, ``error_kind``; status ERROR (described by the
    error kind) when the outcome is ``error``. It is started in the context current when the
    event is emitted, so it is a child of the application's span when the fetch ran inside one.

    :class:`ChannelChanged` is not recorded.
    """

    __slots__ = (
        "_content_changes",
        "_lookups",
        "_mirror_writes",
        "_observation",
        "_origin_attempts",
        "_origin_duration",
        "_status_error",
        "_tracer",
        "_up",
    )

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        from opentelemetry import metrics, trace

        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        self._status_error = functools.partial(trace.Status, trace.StatusCode.ERROR)
        self._observation = metrics.Observation
        self._up: int | None = None

        self._lookups = meter.create_counter(
            LOOKUPS,
            unit="{lookup}",
            description="Lookups answered or failed, by where the answer came from and how",
        )
        self._origin_attempts = meter.create_counter(
            ORIGIN_ATTEMPTS,
            unit="{attempt}",
            description="Requests to Directus (a fetch may retry), by outcome and error kind",
        )
        description = "Time one request to Directus took"
        try:
            self._origin_duration = meter.create_histogram(
                ORIGIN_DURATION,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        except TypeError:  # OpenTelemetry API < 1.30: no bucket advice
            self._origin_duration = meter.create_histogram(
                ORIGIN_DURATION, unit="s", description=description
            )
        meter.create_observable_gauge(
            ORIGIN_UP,
            callbacks=[self._observe_up],
            description="1 while Directus answers (state valid), 0 while it is interrupted",
        )
        self._content_changes = meter.create_counter(
            CONTENT_CHANGES,
            unit="{change}",
            description="Versions whose content changed under the same version number",
        )
        self._mirror_writes = meter.create_counter(
            MIRROR_WRITES,
            unit="{write}",
            description="Mirror writes and withdrawals, by outcome",
        )

    def __call__(self, event: Event) -> None:
        match event:
            case OriginAttempt():
                # Two dicts: an SDK may keep the one it was given (1.27 does), so never change
                # attributes after a measurement.
                self._origin_duration.record(
                    event.duration, {"kind": event.kind, "outcome": event.outcome}
                )
                if event.error_kind:
                    attributes = {
                        "kind": event.kind,
                        "outcome": event.outcome,
                        "error_kind": event.error_kind,
                    }
                else:
                    attributes = {"kind": event.kind, "outcome": event.outcome}
                self._origin_attempts.add(1, attributes)
            case Served():
                self._lookups.add(
                    1, {"kind": event.kind, "source": event.source, "outcome": event.how}
                )
            case LookupFailed():
                self._lookups.add(
                    1, {"kind": event.kind, "source": event.source, "outcome": event.outcome}
                )
            case OriginFetched():
                self._span(event)
            case StateChanged():
                if event.new is OriginState.VALID:
                    self._up = 1
                elif event.new is OriginState.INTERRUPTED:
                    self._up = 0
                else:
                    self._up = None
            case ContentChanged():
                if event.old_hash is not None:  # a version seen for the first time is no change
                    self._content_changes.add(1, {"kind": event.kind, "via": event.via})
            case MirrorWritten():
                self._mirror_writes.add(1, {"kind": event.kind, "outcome": event.outcome})
            case ChannelChanged():
                pass

    def hit_counter(self, kind: str) -> Callable[[int], None]:
        """A function that counts fresh cache hits of ``kind`` (one by default) on
        ``storybench_prompts.lookups`` (``source=cache``, ``outcome=fresh``): the engine asks
        for it once per kind, and a call costs one counter add."""
        add = self._lookups.add
        attributes = {"kind": kind, "source": "cache", "outcome": "fresh"}

        def count(hits: int = 1) -> None:
            add(hits, attributes)

        return count

    def _span(self, event: OriginFetched) -> None:
        start = _nanoseconds(event.started_at)
        attributes: dict[str, str | int] = {
            "kind": event.kind,
            "attempts": event.attempts,
            "outcome": event.outcome,
        }
        if event.version is not None:
            attributes["version"] = event.version
        if event.error_kind:
            attributes["error_kind"] = event.error_kind
        span = self._tracer.start_span(FETCH_SPAN, attributes=attributes, start_time=start)
        if event.outcome == "error":
            span.set_status(self._status_error(event.error_kind or "error"))
        span.end(end_time=start + round(event.duration * _NS))

    def _observe_up(self, options: CallbackOptions) -> Iterable[Observation]:
        up = self._up
        return () if up is None else (self._observation(up),)


def _nanoseconds(seconds: float) -> int:
    """Wall-clock seconds as integer nanoseconds, exact to the float's own precision (a plain
    ``seconds * 1e9`` rounds to 256 ns at today's dates)."""
    whole = int(seconds)
    return whole * _NS + round((seconds - whole) * _NS)


def _api_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.metrics") is not None
    except ImportError:  # no "opentelemetry" package at all, or an import hook refused it
        return False


def otel_hook(mode: Mode) -> OTelHook | None:
    """The hook the ``STORYBENCH_PROMPTS_OTEL`` setting asks for, on the global providers.

    ``off``: None, and OpenTelemetry is not imported. ``auto``: an :class:`OTelHook` when the
    OpenTelemetry API is installed, else None. ``on``: an :class:`OTelHook`, or
    :class:`ConfigurationError` when the API is not installed.
    """
    if mode == "off":
        return None
    if mode not in ("auto", "on"):
        raise ConfigurationError(f"{SETTING} must be auto, on or off, not {mode!r}")
    if _api_installed():
        try:
            return OTelHook()
        except ImportError as exc:
            if mode == "on":
                raise ConfigurationError(
                    f"{SETTING}=on, but OpenTelemetry failed to import ({exc}); "
                    f"reinstall it: {INSTALL}"
                ) from exc
            logger.warning("OpenTelemetry is installed but failed to import (%s): no metrics", exc)
            return None
    if mode == "on":
        raise ConfigurationError(
            f"{SETTING}=on, but the OpenTelemetry API is not installed: {INSTALL}"
        )
    return None
