"""One trace per run: each step's CONSUMER span continues the trace its message carried."""

from __future__ import annotations

from opentelemetry import trace

from actors import Runtime, TracksClient
from tests.test_runtime_chain import chain_of_four


async def test_every_step_of_a_run_shares_one_trace(settings, pool, nc, unique):
    wf = chain_of_four(unique)
    async with Runtime(list(wf), settings=settings):
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
