"""Observability against a real Directus: OpenTelemetry's in-memory reader and exporter count
exactly what the cache did, the status listener fires once per transition when Directus is
killed and restarted, and an edit seen through realtime fires the content listener once. The
same listeners and ``Stats`` work in a process where OpenTelemetry cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from storybench_prompts import (
    CachePolicy,
    CachingRepository,
    DirectusSource,
    FileMirror,
    OriginState,
    PromptSetNotFoundError,
    RetryPolicy,
    build_repository,
)
from storybench_prompts._events import ContentChanged, OriginFetched, OriginStatus
from storybench_prompts.content.kinds import PROMPT_SETS
from storybench_prompts.observability.otel import OTelHook
from tests.fakes import FakeClock
from tests.test_realtime_cache import (
    prompt_id_of,
    realtime_directus,  # noqa: F401  (the fixture)
    settings_for,
    wait_open,
)

pytestmark = [pytest.mark.directus, pytest.mark.timeout(180), pytest.mark.anyio]

LOOKUPS = "storybench_prompts.lookups"
UP = "storybench_prompts.origin.up"
CHANGES = "storybench_prompts.content.changes"
QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


class Recorded:
    """An OTelHook on SDK providers read in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)
        self.spans = InMemorySpanExporter()
        self.tracers = TracerProvider(shutdown_on_exit=False)
        self.tracers.add_span_processor(SimpleSpanProcessor(self.spans))
        self.hook = OTelHook(self.meters, self.tracers)

    def values(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        out: dict[frozenset[tuple[str, Any]], Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            out[frozenset((point.attributes or {}).items())] = point.value
        return out

    def lookups(self) -> dict[tuple[str, str], int]:
        return {(dict(a)["source"], dict(a)["outcome"]): v for a, v in self.values(LOOKUPS).items()}

    def up(self) -> int | None:
        found = list(self.values(UP).values())
        return found[0] if found else None

    def close(self) -> None:
        self.meters.shutdown()
        self.tracers.shutdown()


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    r = Recorded()
    yield r
    r.close()


POLICY = CachePolicy(
    pinned_ttl=60,
    latest_ttl=60,
    max_stale=600,
    stale_if_error=3600,
    not_found_ttl=30,
    fallback_after=5.0,
    probe_initial=1.0,
    probe_max=2.0,
)


def repository(server: Any, tmp_path: Any, clock: FakeClock, *hooks: Any) -> CachingRepository:
    source = DirectusSource(server.url, server.readonly_token, retry=QUICK, kind=PROMPT_SETS)
    return CachingRepository(
        source,
        FileMirror(tmp_path, kind=PROMPT_SETS),
        policy=POLICY,
        clock=clock,  # the TTLs move only when told; network waits are real
        hooks=hooks,
    )


async def test_counts_are_exact_and_no_span_is_made_per_hit(own_directus, tmp_path, recorded):
    clock = FakeClock()
    events: list[Any] = []
    async with repository(own_directus, tmp_path, clock, recorded.hook, events.append) as repo:
        await repo.get(1)  # a miss: fetched from Directus
        for _ in range(7):
            await repo.get(1)  # hits
        fetched_spans = len(recorded.spans.get_finished_spans())
        clock.advance(POLICY.pinned_ttl + 1)
        stale = await repo.get(1)  # past its TTL: served stale, refreshed behind
        assert stale.provenance.stale is True
        await repo.drain()
        with pytest.raises(PromptSetNotFoundError):
            await repo.get(999)  # Directus says no
        with pytest.raises(PromptSetNotFoundError):
            await repo.get(999)  # remembered
        await repo.drain()
        own_directus.kill()
        clock.advance(POLICY.pinned_ttl + POLICY.max_stale + 1)  # too old to serve stale
        failed_over = await repo.get(1)  # Directus refuses: a copy at its first failure
        assert failed_over.provenance.origin_error is not None
        stats = repo.stats()
    assert recorded.lookups() == {
        ("directus", "fresh"): 1,
        ("cache", "fresh"): 7,
        ("cache", "stale"): 1,
        ("directus", "not_found"): 1,
        ("cache", "not_found"): 1,
        (failed_over.provenance.source, "failover"): 1,
    }
    assert (stats.hits, stats.stale_serves, stats.not_found_hits, stats.failovers) == (7, 1, 1, 1)
    # One span per fetch from Directus, none for the seven hits in between.
    spans = recorded.spans.get_finished_spans()
    assert fetched_spans == 1
    assert {s.name for s in spans} == {"storybench_prompts.fetch"}
    assert len(spans) == sum(isinstance(e, OriginFetched) for e in events)


async def test_a_killed_directus_drives_up_to_0_and_back_with_one_listener_call_each(
    own_directus, tmp_path, recorded
):
    clock = FakeClock()
    seen: list[OriginStatus] = []
    async with repository(own_directus, tmp_path, clock, recorded.hook) as repo:
        unsubscribe = repo.on_status_change(seen.append)
        await repo.get(1)
        assert recorded.up() == 1
        assert [s.state for s in seen] == [OriginState.VALID]
        own_directus.kill()
        clock.advance(POLICY.pinned_ttl + 1)
        for _ in range(5):  # many calls during the outage: one transition
            await repo.get(1)
        await anyio.wait_all_tasks_blocked()
        assert recorded.up() == 0
        assert [s.state for s in seen] == [OriginState.VALID, OriginState.INTERRUPTED]
        own_directus.restart()
        clock.advance(POLICY.probe_max + 1)  # the next probe is due
        with anyio.fail_after(30):
            while repo.status().state is not OriginState.VALID:
                await repo.get(1)
                await anyio.sleep(0.05)
                clock.advance(POLICY.probe_max + 1)
        assert recorded.up() == 1
        assert [s.state for s in seen] == [
            OriginState.VALID,
            OriginState.INTERRUPTED,
            OriginState.VALID,
        ]
        unsubscribe()
        own_directus.kill()
        clock.advance(POLICY.pinned_ttl + 1)
        await repo.get(1)
        assert len(seen) == 3  # unsubscribed: no more calls


async def test_an_edit_seen_through_realtime_fires_the_content_listener_once(
    realtime_directus,  # noqa: F811
    tmp_path,
    recorded,
):
    server = realtime_directus
    settings = settings_for(server, tmp_path, latest_ttl=3600, pinned_ttl=3600, otel="off")
    plain: list[ContentChanged] = []
    awaited: list[ContentChanged] = []

    async def alert(change: ContentChanged) -> None:
        await anyio.sleep(0)
        awaited.append(change)

    async with build_repository(settings, hooks=[recorded.hook]) as repo:
        await wait_open(repo)
        repo.on_content_change(plain.append)
        repo.on_content_change(alert)
        before = await repo.latest()
        server.update_item("prompts", prompt_id_of(server, 3), {"text": "Edited mid-run."})
        with anyio.fail_after(10):
            while (await repo.latest()).config_hash == before.config_hash:
                await anyio.sleep(0.01)
        after = await repo.latest()
        for _ in range(20):
            await repo.latest()
            await repo.get(3)
        await anyio.sleep(0.5)  # anything else the edit would trigger has arrived
    assert len(plain) == 1
    change = plain[0]
    assert (change.kind, change.version, change.via) == ("prompts", 3, "realtime")
    assert (change.old_hash, change.new_hash) == (before.config_hash, after.config_hash)
    assert before.config_hash in repr(change)
    assert after.config_hash in repr(change)
    assert awaited == plain
    assert sum(recorded.values(CHANGES).values()) == 1


def test_listeners_and_stats_work_where_opentelemetry_cannot_be_imported(directus, tmp_path):
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("opentelemetry is not installed here")
                return None

        sys.meta_path.insert(0, Refuse())
        from storybench_prompts import ConfigurationError, Settings, build_repository

        def settings(**extra):
            return Settings(directus_url={directus.url!r}, directus_token={directus.readonly_token!r},
                            mirror_dir={str(tmp_path)!r}, mongodb_uri=None, realtime="off", **extra)

        async def main():
            seen = []
            async with build_repository(settings()) as repo:  # STORYBENCH_PROMPTS_OTEL=auto
                repo.on_status_change(lambda status: seen.append(status.state.value))
                await repo.get(1)
                await repo.get(1)
                stats = repo.stats()
            try:
                build_repository(settings(otel="on"))
                refused = None
            except ConfigurationError as exc:
                refused = str(exc)
            print(json.dumps({{
                "hits": stats.hits, "misses": stats.misses, "seen": seen, "refused": refused,
                "imported": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
            }}))

        asyncio.run(main())
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["imported"] == []
    assert (out["hits"], out["misses"]) == (1, 1)
    assert out["seen"] == ["valid"]
    assert "STORYBENCH_PROMPTS_OTEL" in out["refused"]
