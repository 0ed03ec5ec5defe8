"""OpenTelemetry: the events on instruments and spans, the auto/on/off setting, /metrics.

Providers are passed to ``OTelHook`` explicitly and read with the SDK's in-memory reader and
exporter; whatever needs OpenTelemetry's global providers runs in a subprocess of its own.
"""

from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from storybench_prompts import ConfigurationError, OriginState, OriginStatus
from storybench_prompts._events import (
    ChannelChanged,
    ContentChanged,
    Event,
    LookupFailed,
    MirrorWritten,
    OriginAttempt,
    OriginFetched,
    Served,
    StateChanged,
)
from storybench_prompts.observability.otel import DURATION_BUCKETS, OTelHook, otel_hook
from storybench_prompts.observability.prometheus import serve_metrics

LOOKUPS = "storybench_prompts.lookups"
ATTEMPTS = "storybench_prompts.origin.attempts"
DURATION = "storybench_prompts.origin.duration"
UP = "storybench_prompts.origin.up"
CHANGES = "storybench_prompts.content.changes"
WRITES = "storybench_prompts.mirror.writes"

BUCKET_ADVICE = (
    "explicit_bucket_boundaries_advisory" in inspect.signature(Meter.create_histogram).parameters
)

Attrs = frozenset[tuple[str, Any]]


def attrs(**kw: Any) -> Attrs:
    return frozenset(kw.items())


@dataclass
class Otel:
    hook: OTelHook
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider

    def points(self) -> dict[str, dict[Attrs, Any]]:
        """metric name -> attributes -> value (sums, gauges) or data point (histograms)."""
        out: dict[str, dict[Attrs, Any]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "storybench_prompts"
                for metric in scope.metrics:
                    by_attrs = out.setdefault(metric.name, {})
                    for point in metric.data.data_points:
                        key = frozenset((point.attributes or {}).items())
                        if isinstance(point, HistogramDataPoint):
                            by_attrs[key] = point
                        else:
                            assert isinstance(point, NumberDataPoint)
                            by_attrs[key] = point.value
        return out

    def kinds(self) -> dict[str, type]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            m.name: type(m.data)
            for r in data.resource_metrics
            for s in r.scope_metrics
            for m in s.metrics
        }


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Otel(OTelHook(meter_provider, tracer_provider), reader, exporter, tracer_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


RULES = {"fresh": "origin", "stale": "stale", "hedged": "hedge", "failover": "after_error"}


def served(source: str = "directus", how: str = "fresh", kind: str = "prompts") -> Served:
    return Served(kind, None, 3, source, how, RULES[how], 0.01)  # type: ignore[arg-type]


def failed(outcome: str, source: str = "directus", kind: str = "prompts") -> LookupFailed:
    return LookupFailed(kind, 3, outcome, "timeout", source, 0.5)  # type: ignore[arg-type]


def attempt(outcome: str = "ok", error_kind: str | None = None, duration: float = 0.1,
            kind: str = "prompts") -> OriginAttempt:  # fmt: skip
    status = 200 if outcome == "ok" else None
    return OriginAttempt(kind, None, outcome, error_kind, status, duration)  # type: ignore[arg-type]


def state(new: OriginState, old: OriginState = OriginState.INITIALIZING) -> StateChanged:
    return StateChanged(old, new, None, OriginStatus(state=new, since=0.0))


def fetched(**kw: Any) -> OriginFetched:
    fields: dict[str, Any] = {
        "kind": "prompts",
        "version": 3,
        "trigger": "caller",
        "probe": False,
        "outcome": "ok",
        "attempts": 1,
        "error_kind": None,
        "started_at": 1_700_000_000.25,
        "duration": 0.125,
    }
    fields.update(kw)
    return OriginFetched(**fields)


# -- metrics ---------------------------------------------------------------------------------


def test_lookups_count_every_answer_and_failure_by_kind_source_outcome(otel: Otel) -> None:
    events: list[Event] = [
        served("directus", "fresh"),
        served("directus", "fresh"),
        served("cache", "stale"),
        served("mirror", "hedged"),
        served("mirror", "failover"),
        served("mirror", "failover"),
        served("mirror", "failover"),
        served("cache", "failover", kind="evaluations"),
        failed("not_found", "directus"),
        failed("not_found", "cache"),
        failed("not_found", "cache"),
        failed("error", "directus", kind="evaluations"),
    ]
    for event in events:
        otel.hook(event)

    assert otel.points()[LOOKUPS] == {
        attrs(kind="prompts", source="directus", outcome="fresh"): 2,
        attrs(kind="prompts", source="cache", outcome="stale"): 1,
        attrs(kind="prompts", source="mirror", outcome="hedged"): 1,
        attrs(kind="prompts", source="mirror", outcome="failover"): 3,
        attrs(kind="evaluations", source="cache", outcome="failover"): 1,
        attrs(kind="prompts", source="directus", outcome="not_found"): 1,
        attrs(kind="prompts", source="cache", outcome="not_found"): 2,
        attrs(kind="evaluations", source="directus", outcome="error"): 1,
    }
    assert otel.kinds()[LOOKUPS] is Sum


def test_origin_attempts_count_and_time_each_request(otel: Otel) -> None:
    for event in [
        attempt("ok", duration=0.02),
        attempt("ok", duration=0.04),
        attempt("error", "timeout", duration=10.0),
        attempt("error", "timeout", duration=10.0),
        attempt("error", "server_error", duration=0.3),
        attempt("ok", duration=0.5, kind="evaluations"),
    ]:
        otel.hook(event)

    points = otel.points()
    assert points[ATTEMPTS] == {
        attrs(kind="prompts", outcome="ok"): 2,  # no error_kind attribute at all
        attrs(kind="prompts", outcome="error", error_kind="timeout"): 2,
        attrs(kind="prompts", outcome="error", error_kind="server_error"): 1,
        attrs(kind="evaluations", outcome="ok"): 1,
    }
    durations = points[DURATION]
    assert set(durations) == {
        attrs(kind="prompts", outcome="ok"),
        attrs(kind="prompts", outcome="error"),
        attrs(kind="evaluations", outcome="ok"),
    }
    ok = durations[attrs(kind="prompts", outcome="ok")]
    assert ok.count == 2
    assert ok.sum == pytest.approx(0.06)
    assert (ok.min, ok.max) == (pytest.approx(0.02), pytest.approx(0.04))
    error = durations[attrs(kind="prompts", outcome="error")]
    assert error.count == 3
    assert error.sum == pytest.approx(20.3)
    if BUCKET_ADVICE:  # OpenTelemetry >= 1.30 applies the advised boundaries
        assert tuple(error.explicit_bounds) == tuple(DURATION_BUCKETS)  # seconds, not ms
    assert otel.kinds()[DURATION] is Histogram


def test_origin_up_follows_the_last_state_and_is_absent_before_the_first(otel: Otel) -> None:
    assert UP not in otel.points() or otel.points()[UP] == {}

    otel.hook(state(OriginState.VALID))
    assert otel.points()[UP] == {attrs(): 1}
    otel.hook(state(OriginState.INTERRUPTED, OriginState.VALID))
    assert otel.points()[UP] == {attrs(): 0}
    assert otel.points()[UP] == {attrs(): 0}  # it stays until the next change
    otel.hook(state(OriginState.VALID, OriginState.INTERRUPTED))
    assert otel.points()[UP] == {attrs(): 1}
    assert otel.kinds()[UP] is Gauge


def test_first_state_interrupted_reads_zero(otel: Otel) -> None:
    otel.hook(state(OriginState.INTERRUPTED))
    assert otel.points()[UP] == {attrs(): 0}


def test_content_changes_and_mirror_writes(otel: Otel) -> None:
    events: list[Event] = [
        ContentChanged("prompts", 3, None, "a" * 16, "refresh", 1.0),  # first seen: no change
        ContentChanged("prompts", 3, "a" * 16, "b" * 16, "realtime", 2.0),
        ContentChanged("prompts", 3, "b" * 16, "9" * 16, "refresh", 2.5),
        ContentChanged("prompts", 4, "c" * 16, "d" * 16, "realtime", 3.0),
        ContentChanged("evaluations", 1, "e" * 16, "f" * 16, "sync", 4.0),
        MirrorWritten("prompts", 3, "save", "new"),
        MirrorWritten("prompts", 4, "save", "new"),
        MirrorWritten("prompts", 3, "save", "unchanged"),
        MirrorWritten("prompts", 5, "withdraw", "withdrawn"),
        MirrorWritten("evaluations", 1, "save", "error", "mirror_unavailable"),
    ]
    for event in events:
        otel.hook(event)

    points = otel.points()
    assert points[CHANGES] == {
        attrs(kind="prompts", via="refresh"): 1,
        attrs(kind="prompts", via="realtime"): 2,
        attrs(kind="evaluations", via="sync"): 1,
    }
    assert points[WRITES] == {
        attrs(kind="prompts", outcome="new"): 2,
        attrs(kind="prompts", outcome="unchanged"): 1,
        attrs(kind="prompts", outcome="withdrawn"): 1,
        attrs(kind="evaluations", outcome="error"): 1,
    }


def test_each_event_type_touches_only_its_own_instrument(otel: Otel) -> None:
    otel.hook(ChannelChanged(up=True, state="open"))
    assert {name for name, values in otel.points().items() if values} == set()
    otel.hook(served())
    assert {name for name, values in otel.points().items() if values} == {LOOKUPS}
    otel.hook(fetched())
    assert {name for name, values in otel.points().items() if values} == {LOOKUPS}


def test_hit_counter_adds_exactly_one_fresh_cache_lookup_per_call(otel: Otel) -> None:
    prompts = otel.hook.hit_counter("prompts")
    evaluations = otel.hook.hit_counter("evaluations")
    for _ in range(5):
        prompts()
    evaluations()
    otel.hook(served("directus", "fresh"))

    assert otel.points()[LOOKUPS] == {
        attrs(kind="prompts", source="cache", outcome="fresh"): 5,
        attrs(kind="evaluations", source="cache", outcome="fresh"): 1,
        attrs(kind="prompts", source="directus", outcome="fresh"): 1,
    }
    prompts()
    assert otel.points()[LOOKUPS][attrs(kind="prompts", source="cache", outcome="fresh")] == 6
    assert otel.spans.get_finished_spans() == ()


# -- traces ----------------------------------------------------------------------------------


def test_a_fetch_is_a_span_with_its_own_times_and_attributes(otel: Otel) -> None:
    otel.hook(fetched(version=3, attempts=2, started_at=1_700_000_000.25, duration=0.125))

    (span,) = otel.spans.get_finished_spans()
    assert span.name == "storybench_prompts.fetch"
    assert span.start_time == 1_700_000_000_250_000_000
    assert span.end_time == 1_700_000_000_375_000_000
    assert dict(span.attributes or {}) == {
        "kind": "prompts",
        "version": 3,
        "attempts": 2,
        "outcome": "ok",
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "storybench_prompts"


def test_a_failed_fetch_has_error_status_named_by_its_error_kind(otel: Otel) -> None:
    otel.hook(fetched(version=None, outcome="error", attempts=4, error_kind="timeout"))
    otel.hook(fetched(outcome="not_found", error_kind="not_found"))

    error, not_found = otel.spans.get_finished_spans()
    assert dict(error.attributes or {}) == {
        "kind": "prompts",  # no version: the latest
        "attempts": 4,
        "outcome": "error",
        "error_kind": "timeout",
    }
    assert error.status.status_code is StatusCode.ERROR
    assert error.status.description == "timeout"
    # "no such version" is an answer, not a failure of the fetch
    assert not_found.status.status_code is StatusCode.UNSET
    assert dict(not_found.attributes or {})["outcome"] == "not_found"


def test_the_fetch_span_nests_under_the_active_span(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("benchmark run") as parent:
        otel.hook(fetched())
    otel.hook(fetched(kind="evaluations"))

    inner, run, outer = otel.spans.get_finished_spans()
    assert run.name == "benchmark run"
    context = parent.get_span_context()
    assert inner.parent is not None
    assert inner.parent.span_id == context.span_id
    assert inner.context is not None
    assert inner.context.trace_id == context.trace_id
    assert outer.parent is None
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_no_span_for_anything_but_a_whole_fetch(otel: Otel) -> None:
    events: list[Event] = [
        served(),
        failed("error"),
        attempt("error", "timeout"),
        state(OriginState.VALID),
        ContentChanged("prompts", 3, None, "a" * 16, "refresh", 1.0),
        MirrorWritten("prompts", 3, "save", "new"),
        ChannelChanged(up=False, state="closed", reason="eof"),
    ]
    for event in events:
        otel.hook(event)
    otel.hook.hit_counter("prompts")()
    assert otel.spans.get_finished_spans() == ()


# -- the setting -----------------------------------------------------------------------------


def run_python(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


HIDE_OPENTELEMETRY = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
"""


def test_off_imports_nothing_of_opentelemetry() -> None:
    result = run_python("""
        import json, sys
        from storybench_prompts.observability.otel import otel_hook
        imported_by_module = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        hook = otel_hook("off")
        print(json.dumps({
            "hook": repr(hook),
            "module": imported_by_module,
            "after": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
        }))
    """)
    assert result == {"hook": "None", "module": [], "after": []}


AUTO_AND_ON = """
import json
from storybench_prompts import ConfigurationError
from storybench_prompts.observability.otel import otel_hook

auto = otel_hook("auto")
try:
    otel_hook("on")
    on = None
except ConfigurationError as exc:
    on = str(exc)
print(json.dumps({
    "auto": repr(auto),
    "on": on,
    "imported": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
}))
"""


def test_auto_without_opentelemetry_is_none_and_on_names_the_setting() -> None:
    result = run_python(HIDE_OPENTELEMETRY + AUTO_AND_ON)
    assert result["auto"] == "None"
    assert "STORYBENCH_PROMPTS_OTEL=on" in result["on"]
    assert "pip install 'storybench-prompts[otel]'" in result["on"]
    assert result["imported"] == []


def test_auto_and_on_use_the_global_providers() -> None:
    # The hook is made before the application sets its providers: OpenTelemetry's proxies
    # forward to them once set.
    result = run_python("""
        import json
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from storybench_prompts._events import OriginFetched, Served
        from storybench_prompts.observability.otel import OTelHook, otel_hook

        auto, on = otel_hook("auto"), otel_hook("on")
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        for hook in (auto, on):
            assert isinstance(hook, OTelHook)
            hook(Served("prompts", None, 3, "mirror", "failover", "after_error", 0.1))
            hook(OriginFetched("prompts", None, "caller", False, "ok", 1, None, 1.0, 0.5))
        counts = {
            p.attributes["outcome"]: p.value
            for r in reader.get_metrics_data().resource_metrics
            for s in r.scope_metrics
            for m in s.metrics
            if m.name == "storybench_prompts.lookups"
            for p in m.data.data_points
        }
        print(json.dumps({
            "counts": counts,
            "spans": [s.name for s in exporter.get_finished_spans()],
        }))
    """)
    assert result == {
        "counts": {"failover": 2},
        "spans": ["storybench_prompts.fetch", "storybench_prompts.fetch"],
    }


def test_an_unknown_mode_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="STORYBENCH_PROMPTS_OTEL"):
        otel_hook("yes")  # type: ignore[arg-type]


# -- Prometheus ------------------------------------------------------------------------------


def test_serve_metrics_serves_the_counters_on_127_0_0_1_and_closes() -> None:
    result = run_python("""
        import json
        import httpx
        from prometheus_client.parser import text_string_to_metric_families
        from storybench_prompts import OriginState, OriginStatus
        from storybench_prompts._events import OriginAttempt, Served, StateChanged
        from storybench_prompts.observability.otel import OTelHook
        from storybench_prompts.observability.prometheus import serve_metrics

        hook = OTelHook()  # global providers, not set yet
        server = serve_metrics(port=0)
        hook(Served("prompts", None, 3, "mirror", "failover", "after_error", 0.1))
        hook(Served("prompts", None, 3, "mirror", "failover", "after_error", 0.1))
        hit = hook.hit_counter("evaluations")
        hit(); hit(); hit()
        hook(OriginAttempt("prompts", None, "error", "timeout", None, 10.0))
        hook(StateChanged(OriginState.VALID, OriginState.INTERRUPTED, "timeout",
                          OriginStatus(state=OriginState.INTERRUPTED, since=0.0)))
        response = httpx.get(server.url)
        samples = [
            [s.name, {k: v for k, v in s.labels.items() if not k.startswith("otel_scope")},
             s.value]
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
            if s.name.startswith("storybench_prompts")
        ]
        bound = server._server.server_address[0]
        port = server.port
        url = server.url
        installed = server.installed_provider
        server.close()
        server.close()  # idempotent
        try:
            httpx.get(url, timeout=2)
            after = "served"
        except httpx.ConnectError:
            after = "refused"
        serve_metrics(port=port).close()  # the port is free again
        print(json.dumps({
            "status": response.status_code,
            "type": response.headers["content-type"],
            "samples": samples,
            "bound": bound,
            "url": url == f"http://127.0.0.1:{port}/metrics",
            "installed": installed,
            "after": after,
        }))
    """)
    assert result["status"] == 200
    assert result["type"].startswith("text/plain")
    assert result["bound"] == "127.0.0.1"
    assert result["url"] is True
    assert result["installed"] is True
    assert result["after"] == "refused"
    samples = result["samples"]
    assert [
        "storybench_prompts_lookups_total",
        {"kind": "prompts", "source": "mirror", "outcome": "failover"},
        2.0,
    ] in samples
    assert [
        "storybench_prompts_lookups_total",
        {"kind": "evaluations", "source": "cache", "outcome": "fresh"},
        3.0,
    ] in samples
    assert [
        "storybench_prompts_origin_attempts_total",
        {"kind": "prompts", "outcome": "error", "error_kind": "timeout"},
        1.0,
    ] in samples
    assert [
        "storybench_prompts_origin_duration_seconds_count",
        {"kind": "prompts", "outcome": "error"},
        1.0,
    ] in samples
    assert ["storybench_prompts_origin_up", {}, 0.0] in samples


def test_serve_metrics_keeps_the_applications_own_provider() -> None:
    result = run_python("""
        import json
        import httpx
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from storybench_prompts._events import Served
        from storybench_prompts.observability.otel import OTelHook
        from storybench_prompts.observability.prometheus import serve_metrics

        mine = MeterProvider(metric_readers=[PrometheusMetricReader()])
        metrics.set_meter_provider(mine)
        hook = OTelHook()
        with serve_metrics(port=0) as server:
            hook(Served("prompts", None, 3, "directus", "fresh", "origin", 0.1))
            text = httpx.get(server.url).text
        print(json.dumps({
            "installed": server.installed_provider,
            "kept": metrics.get_meter_provider() is mine,
            "served": any(
                line.startswith("storybench_prompts_lookups_total{") and line.endswith(" 1.0")
                for line in text.splitlines()
            ),
        }))
    """)
    assert result == {"installed": False, "kept": True, "served": True}


def test_serve_metrics_on_a_busy_port_names_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"port {port} is already in use"):
            serve_metrics(port=port)


@pytest.mark.parametrize("port", [-1, 65536, "9464", True])
def test_serve_metrics_refuses_a_bad_port(port: Any) -> None:
    with pytest.raises(ConfigurationError, match="metrics port"):
        serve_metrics(port=port)


@pytest.mark.parametrize("host", ["a" * 70, "bad..host"])
def test_serve_metrics_on_a_host_that_cannot_be_encoded_names_it(host: str) -> None:
    with pytest.raises(ConfigurationError, match="not a valid host"):
        serve_metrics(host, 0)
