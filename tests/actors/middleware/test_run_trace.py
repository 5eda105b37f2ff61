"""One run, one trace, however the run goes: several roots, a fan-in, a manual gate released by
``tracks proceed``, a ``tracks resume`` after a failure, all through the CLI, exported over OTLP/HTTP
to an in-process receiver. Run with lean spans and with the SDK's (``TRACKS_LEAN_SPANS=false``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from actors import Runtime, TracksClient
from foundation import telemetry
from tests.support.apps import traced_app
from tests.support.otlp import Collector, attrs
from tests.support.waiting import eventually
from tracks.cli.main import cli

CONSUMER, PRODUCER = OtlpSpan.SPAN_KIND_CONSUMER, OtlpSpan.SPAN_KIND_PRODUCER


@pytest.fixture(params=["lean", "sdk"])
def traced(request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    lean = request.param == "lean"
    monkeypatch.setenv("TRACKS_LEAN_SPANS", "true" if lean else "false")  # the CLI's own settings
    yield settings.model_copy(update={"lean_spans": lean})
    telemetry.set_lean_spans(True)


@pytest.fixture
def collected() -> Iterator[tuple[Collector, BatchSpanProcessor]]:
    collector = Collector()
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=collector.endpoint))
    telemetry.add_span_processor(processor)
    try:
        yield collector, processor
    finally:
        telemetry.remove_span_processor(processor)
        processor.shutdown()
        collector.close()


async def _status(pool: Any, cid: str, track: str | None = None) -> str | None:
    if track is None:
        return await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
    return await pool.fetchval(
        "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, track
    )


async def test_a_run_of_every_shape_is_one_trace(traced, collected, servers, pool, unique, monkeypatch):
    collector, processor = collected
    monkeypatch.setenv("TRACKS_NATS_URL", servers.nats_url)
    monkeypatch.setenv("TRACKS_DATABASE_URL", servers.database_url)
    wf = traced_app.build(unique)
    a, b, c, d, e = (f"{unique}-{x}" for x in "abcde")
    cid = f"{unique}-run"
    runner = CliRunner()

    async def cli_ok(*args: str) -> str:
        done = await asyncio.to_thread(runner.invoke, cli, list(args))
        assert done.exit_code == 0, done.output
        return done.output

    async with Runtime(list(wf), settings=traced):
        await cli_ok("run", f"tests.support.apps.traced_app:{wf.name}", "--correlation-id", cid)

        async def gated() -> bool:
            return await _status(pool, cid, d) == "gated"

        await eventually(gated, what="d to wait at the review gate")
        await cli_ok("proceed", cid)

        async def failed() -> bool:
            return await _status(pool, cid) == "failed"

        await eventually(failed, what="the run to fail at e")
        traced_app.broken["e"] = False
        await cli_ok("resume", cid)

        async def completed() -> bool:
            return await _status(pool, cid) == "completed"

        await eventually(completed, what="the resumed run to complete")
    await asyncio.to_thread(processor.force_flush)

    ours = [s for s in collector.spans if attrs(s).get("messaging.message.conversation_id") == cid]
    traces = {s.trace_id for s in ours}
    assert len(traces) == 1, {s.name: s.trace_id.hex() for s in ours}  # one run, one trace
    (trace_id,) = traces
    assert all(cid not in s.name for s in collector.spans)  # never an ID in a span name
    run = [s for s in collector.spans if s.trace_id == trace_id]
    names = {s.name for s in run}
    assert {f"start {wf.name}", f"proceed {wf.name}", f"resume {wf.name}"} <= names
    assert {f"process {t}" for t in (a, b, c, d, e)} <= names
    assert {f"publish tracks.{t}.run" for t in (a, b, d, e)} <= names  # roots, the gate, the resume
    assert {f"publish tracks.{t}.completed" for t in (a, b, c, d, e)} <= names
    assert {
        f"publish tracks.workflow.{wf.name}.failed",
        f"publish tracks.workflow.{wf.name}.completed",
    } <= names

    consumers = [s for s in run if s.kind == CONSUMER]
    for span in consumers:
        got = attrs(span)
        track = span.name.removeprefix("process ")
        assert got["messaging.system"] == "nats"
        assert got["messaging.operation.type"] == got["messaging.operation.name"] == "process"
        assert got["messaging.destination.name"].endswith(f".{cid}")
        assert got["messaging.destination.template"] == got["messaging.destination.name"].rsplit(".", 1)[0]
        assert got["messaging.message.conversation_id"] == cid
        assert got["messaging.consumer.group.name"] == track
        assert got["messaging.message.id"]
    for span in (s for s in run if s.kind == PRODUCER):
        got = attrs(span)
        assert got["messaging.system"] == "nats"
        assert got["messaging.operation.type"] == "publish"
        assert span.name == f"publish {got['messaging.destination.template']}"
        assert got["messaging.destination.name"] == f"{got['messaging.destination.template']}.{cid}"
        assert got["messaging.message.id"]
    failures = [s for s in consumers if s.name == f"process {e}" and "error.type" in attrs(s)]
    assert [attrs(s)["error.type"] for s in failures] == ["PermanentError"]

    # the fan-in: parented on the event that completed it, linked to the other upstream's step
    steps = {s.name: s for s in consumers if attrs(s).get("tracks.verdict") == "run"}
    fan_in = steps[f"process {c}"]
    upstream_spans = {steps[f"process {a}"].span_id: a, steps[f"process {b}"].span_id: b}
    linked = {upstream_spans[link.span_id] for link in fan_in.links if link.span_id in upstream_spans}
    parent_step = run[[s.span_id for s in run].index(fan_in.parent_span_id)].parent_span_id
    assert linked == {upstream_spans[x] for x in upstream_spans if x != parent_step}
    assert len(linked) == 1


async def test_a_root_triggered_from_another_trace_joins_the_run(traced, collected, nc, pool, unique):
    """The second root is published on its own, from a different trace: its step joins the run's
    trace (stored by the claim that opened the run), linking to the trace its message came from."""
    collector, processor = collected
    wf = traced_app.build(unique)
    a, b = f"{unique}-a", f"{unique}-b"
    cid = f"{unique}-split"
    client = TracksClient(nc)
    async with Runtime(list(wf), settings=traced):
        first = telemetry.start_span("first caller", kind=SpanKind.INTERNAL, attributes={}, parent=None)
        token = otel_context.attach(trace.set_span_in_context(first))
        await client.trigger(a, {}, correlation_id=cid, workflow=wf.name)
        otel_context.detach(token)
        first.end()

        async def opened() -> bool:
            return await _status(pool, cid, a) == "completed"

        await eventually(opened, what="root a to complete")
        other = telemetry.start_span("second caller", kind=SpanKind.INTERNAL, attributes={}, parent=None)
        token = otel_context.attach(trace.set_span_in_context(other))
        await client.trigger(b, {}, correlation_id=cid, workflow=wf.name)
        otel_context.detach(token)
        other.end()

        async def gated() -> bool:
            return await _status(pool, cid, f"{unique}-d") == "gated"

        await eventually(gated, what="the fan-in to run and d to wait at its gate")
    await asyncio.to_thread(processor.force_flush)

    run_trace = first.get_span_context().trace_id.to_bytes(16, "big")
    other_trace = other.get_span_context().trace_id.to_bytes(16, "big")
    consumers = {
        s.name: s
        for s in collector.spans
        if s.kind == CONSUMER and attrs(s).get("messaging.message.conversation_id") == cid
    }
    assert {s.trace_id for s in consumers.values()} == {run_trace}
    joined = consumers[f"process {b}"]
    assert [(link.trace_id, attrs(link)["tracks.link"]) for link in joined.links] == [
        (other_trace, "delivered_by")
    ]
    # what b published continues the run's trace too: the fan-in and its event
    assert consumers[f"process {unique}-c"].trace_id == run_trace
    stored = await pool.fetch(
        "SELECT event_type, trace_id FROM processing_logs WHERE correlation_id = $1 AND track_id = $2",
        cid,
        b,
    )  # the started row too: written by the claim, before the step's span joined the run's trace
    assert {(r["event_type"], r["trace_id"]) for r in stored} == {
        ("started", run_trace.hex()),
        ("completed", run_trace.hex()),
    }
