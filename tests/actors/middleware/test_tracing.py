"""One trace per run: each step's CONSUMER span continues the trace its message carried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from actors import Runtime, TracksClient
from foundation import telemetry
from tests.actors.runtime.test_runtime_chain import chain_of_four
from tests.support.otlp import Collector, attrs


@pytest.fixture(params=["lean", "sdk"])
def traced(request: pytest.FixtureRequest, settings: Any) -> Any:
    """Each test runs with the runtime's lean spans and with the SDK's (TRACKS_LEAN_SPANS=false)."""
    yield settings.model_copy(update={"lean_spans": request.param == "lean"})
    telemetry.set_lean_spans(True)


async def test_every_step_of_a_run_shares_one_trace(traced, pool, nc, unique):
    wf = chain_of_four(unique)
    async with Runtime(list(wf), settings=traced):
        client = TracksClient(nc)
        first = await client.run(wf, {"n": 1}, timeout=30, correlation_id=f"{unique}-one")
        second = await client.run(wf, {"n": 2}, timeout=30, correlation_id=f"{unique}-two")
    assert first["n"] == 5
    assert second["n"] == 6
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider) is False  # the SDK is installed
    traces = {}
    for cid in (f"{unique}-one", f"{unique}-two"):
        rows = await pool.fetch(
            "SELECT DISTINCT trace_id FROM processing_logs "
            "WHERE correlation_id = $1 AND event_type = 'completed'",
            cid,
        )
        assert len(rows) == 1, rows  # four steps, one trace
        (traces[cid],) = [r["trace_id"] for r in rows]
        assert traces[cid] and len(traces[cid]) == 32
    assert traces[f"{unique}-one"] != traces[f"{unique}-two"]


async def test_spans_are_exported_over_otlp_as_one_trace_per_run(traced, nc, unique):
    """CONSUMER span per step, PRODUCER span per publish, linked trigger → step → event → step."""
    collector = Collector()
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=collector.endpoint))
    telemetry.add_span_processor(processor)
    wf = chain_of_four(unique)
    names = [t.name for t in wf]
    cid = f"{unique}-traced"
    try:
        async with Runtime(list(wf), settings=traced):
            await TracksClient(nc).run(wf, {"n": 1}, timeout=30, correlation_id=cid)
        await asyncio.to_thread(processor.force_flush)
    finally:
        telemetry.remove_span_processor(processor)
        processor.shutdown()
        collector.close()

    steps = {
        s.name: s
        for s in collector.spans
        if s.kind == OtlpSpan.SPAN_KIND_CONSUMER and attrs(s).get("messaging.message.conversation_id") == cid
    }
    assert sorted(steps) == sorted(f"process {n}" for n in names)
    (trace_id,) = {s.trace_id for s in steps.values()}
    in_trace = {s.span_id: s for s in collector.spans if s.trace_id == trace_id}
    for i, name in enumerate(names):
        step = steps[f"process {name}"]
        activated_by = f"tracks.{names[i - 1]}.completed.{cid}" if i else f"tracks.{name}.run.{cid}"
        assert attrs(step)["messaging.destination.name"] == activated_by
        assert attrs(step)["tracks.verdict"] == "run"
        assert step.status.code == Status.STATUS_CODE_OK
        publish = in_trace[step.parent_span_id]  # the event (or trigger) that activated this step
        assert publish.kind == OtlpSpan.SPAN_KIND_PRODUCER
        assert attrs(publish)["messaging.destination.name"] == activated_by
        if i:  # published inside the previous step's span
            assert publish.parent_span_id == steps[f"process {names[i - 1]}"].span_id
    announced = [
        s for s in in_trace.values() if s.kind == OtlpSpan.SPAN_KIND_PRODUCER and "workflow" in s.name
    ]
    assert [s.name for s in announced] == [f"publish tracks.workflow.{wf.name}.completed"]
