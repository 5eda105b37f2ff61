"""An actor's /metrics, /healthz and /readyz (TRACKS_HTTP_PORT), scraped over real HTTP."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actors import PermanentError, RetryableError, Runtime, TrackContext, TracksClient, Workflow
from actors.ledger.cancel import cancel
from foundation.jetstream.publisher import EventPublisher
from foundation.settings import Settings
from tests.actors.coordination.test_coordination_cancel import Seen, cancellable
from tests.support.http import http_get, samples
from tests.support.otlp_metrics import MetricsReceiver
from tests.support.waiting import eventually
from tracks.embedded._process import free_port


def metrics_workflow(prefix: str) -> Workflow:
    """ok completes; flaky fails once then completes; doomed fails for good (dead-lettered)."""
    wf = Workflow(f"metrics-{prefix}")

    @wf.track(f"{prefix}-ok")
    async def ok(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    @wf.track(f"{prefix}-flaky")
    async def flaky(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        if ctx.deliveries == 1:
            raise RetryableError("first try fails", delay_s=0.05)
        return payload

    @wf.track(f"{prefix}-doomed")
    async def doomed(ctx: TrackContext, payload: dict[str, object]) -> None:
        raise PermanentError("never works")

    return wf


def value(page: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_health_and_readiness_of_a_running_actor(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str
) -> None:
    """Steps completed, retried and dead-lettered are counted per track and outcome, with their
    durations; runs are counted by workflow and status; in-flight, breaker, pending and DLQ gauges
    are there; /healthz and /readyz answer 200 while the runtime is up."""
    wf = metrics_workflow(unique)
    ok, flaky, doomed = (f"{unique}-{n}" for n in ("ok", "flaky", "doomed"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with Runtime(list(wf), settings=settings.model_copy(update={"http_port": port})) as runtime:
        assert runtime.metrics is not None and runtime.metrics.server is not None
        assert (await http_get(f"{base}/healthz"))[0] == 200
        status, body = await http_get(f"{base}/readyz")
        assert (status, json.loads(body)) == (200, {"status": "ready"})

        cid = await TracksClient(js).start(wf, {"n": 1}, correlation_id=f"{unique}-run")

        async def settled() -> bool:
            page = samples((await http_get(f"{base}/metrics"))[1])
            return (
                value(page, "tracks_steps_total", track=ok, outcome="completed") == 1
                and value(page, "tracks_steps_total", track=flaky, outcome="completed") == 1
                and value(page, "tracks_steps_total", track=doomed, outcome="dead_lettered") == 1
            )

        await eventually(settled, timeout=30, what="the three steps to be counted")
        await eventually(
            lambda: _has(base, "tracks_consumer_pending", track=ok), timeout=15, what="the pending poll"
        )
        status, text = await http_get(f"{base}/metrics")
        assert status == 200
        page = samples(text)
        assert value(page, "tracks_steps_total", track=flaky, outcome="retried") == 1
        assert value(page, "tracks_steps_total", track=ok, outcome="retried") == 0
        # a failed try and a good one
        assert value(page, "tracks_step_duration_seconds_count", track=flaky) == 2
        assert value(page, "tracks_step_duration_seconds_bucket", track=ok, le="+Inf") == 1
        assert value(page, "tracks_runs_total", workflow=wf.name, status="failed") == 1, cid
        # the waits of a step: first deliveries only (the retry's back-off is not lag), commits, PubAcks
        assert value(page, "tracks_start_lag_seconds_count", track=flaky) == 1
        assert value(page, "tracks_start_lag_seconds_count", track=ok) == 1
        assert value(page, "tracks_commit_wait_seconds_count", writer="ledger-claims") >= 4
        assert value(page, "tracks_commit_wait_seconds_count", writer="ledger-writes") >= 3
        assert value(page, "tracks_puback_wait_seconds_count", stream="TRACKS") >= 2
        for track in (ok, flaky, doomed):
            assert ("tracks_in_flight", (("track", track),)) in page
            assert value(page, "tracks_breaker_state", track=track) == 0  # closed
            assert ("tracks_consumer_pending", (("track", track),)) in page
        assert ("tracks_dlq_messages", ()) in page
        assert not [name for name, _ in page if name.endswith("_total_total") or name.endswith("_created")]
        assert (await http_get(f"{base}/nope"))[0] == 404
    assert runtime.metrics is not None


async def _has(base: str, name: str, **labels: str) -> bool:
    return (name, tuple(sorted(labels.items()))) in samples((await http_get(f"{base}/metrics"))[1])


async def test_readyz_is_503_while_nats_is_unreachable(settings: Settings, unique: str) -> None:
    """Starting against a NATS that does not answer: /healthz 200 (the loop runs), /readyz 503
    naming NATS, PostgreSQL and the consumers; nothing listens once the runtime is shut down."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    wf = metrics_workflow(unique)
    runtime = Runtime(
        list(wf),
        settings=settings.model_copy(
            update={"http_port": port, "nats_url": f"nats://127.0.0.1:{free_port()}", "connect_wait_s": 30}
        ),
    )
    starting = asyncio.create_task(runtime.start())
    try:

        async def listening() -> bool:
            try:
                return (await http_get(f"{base}/healthz", timeout=2))[0] == 200
            except OSError:
                return False

        await eventually(listening, timeout=10, what="the probe server")
        status, body = await http_get(f"{base}/readyz")
        assert status == 503, body
        report = json.loads(body)
        assert report["status"] == "not ready"
        assert set(report["notReady"]) >= {"nats", "postgresql", "consumers"}, report
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await runtime.shutdown()
    try:
        await http_get(f"{base}/healthz", timeout=2)
    except OSError:
        pass
    else:
        raise AssertionError("the probe server still answers after shutdown")


async def test_readyz_is_503_once_the_nats_connection_is_gone(
    settings: Settings, migrated: None, unique: str
) -> None:
    """A running actor whose NATS connection closed is not ready (503 naming NATS)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    wf = metrics_workflow(unique)
    async with Runtime(list(wf), settings=settings.model_copy(update={"http_port": port})) as runtime:
        assert (await http_get(f"{base}/readyz"))[0] == 200
        assert runtime.nc is not None
        await runtime.nc.close()
        status, body = await http_get(f"{base}/readyz")
        assert status == 503, body
        assert "nats" in json.loads(body)["notReady"]
        assert (await http_get(f"{base}/healthz"))[0] == 200


async def test_the_same_metrics_go_over_otlp_when_an_endpoint_is_set(
    settings: Settings, migrated: None, js: JetStreamContext, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With OTEL_EXPORTER_OTLP_METRICS_ENDPOINT and no port: no HTTP server, and the step counter,
    the duration histogram (explicit buckets) and the gauges arrive at an OTLP/HTTP receiver."""
    receiver = MetricsReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
    wf = metrics_workflow(unique)
    ok = f"{unique}-ok"
    try:
        async with Runtime(list(wf), settings=settings, name=f"otlp-{unique}") as runtime:
            assert runtime.metrics is not None and runtime.metrics.server is None
            await TracksClient(js).start(wf, {"n": 1}, correlation_id=f"{unique}-run")

            async def exported() -> bool:
                return receiver.value("tracks_steps", track=ok, outcome="completed") == 1

            await eventually(exported, timeout=30, what="the step counter over OTLP")
        assert receiver.kinds["tracks_steps"] == "sum"
        assert receiver.kinds["tracks_in_flight"] == "gauge"
        histogram = receiver.value("tracks_step_duration_seconds", track=ok)
        assert histogram.count == 1 and sum(histogram.bucket_counts) == 1
        assert len(histogram.bucket_counts) == len(histogram.explicit_bounds) + 1
        assert f"otlp-{unique}" in receiver.services
    finally:
        receiver.close()


async def test_a_cancelled_run_and_its_stopped_step_are_counted(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str
) -> None:
    """The step that stopped on cancel counts as ``cancelled``; the run as ``status="cancelled"``."""
    seen = Seen()
    wf = cancellable(unique, seen, stop=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with Runtime(list(wf), settings=settings.model_copy(update={"http_port": port})):
        await TracksClient(nc).start(wf, {}, correlation_id=f"{unique}-run")
        await asyncio.wait_for(seen.started.wait(), 20)
        await cancel(pool, EventPublisher(js), f"{unique}-run", "enough")

        async def counted() -> bool:
            page = samples((await http_get(f"{base}/metrics"))[1])
            return value(page, "tracks_steps_total", track=f"{unique}-b", outcome="cancelled") == 1

        await eventually(counted, timeout=20, what="the cancelled step counted")
        page = samples((await http_get(f"{base}/metrics"))[1])
        assert value(page, "tracks_runs_total", workflow=wf.name, status="cancelled") == 1
        assert value(page, "tracks_steps_total", track=f"{unique}-b", outcome="retried") == 0
