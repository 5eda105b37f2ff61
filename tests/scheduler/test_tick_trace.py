"""A scheduled tick is the root of its run's trace: ``tick <schedule>``, then the publish, then the step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from actors import Runtime, TrackContext, Workflow
from foundation import telemetry
from scheduler.cron import CronExpression
from scheduler.publisher import TickPublisher
from scheduler.schedules import OverlapPolicy, Schedule
from subjects.priority import Priority
from tests.support.waiting import eventually


async def test_a_tick_roots_the_trace_of_the_run_it_starts(settings, js, pool, unique):
    wf = Workflow(f"{unique}-ticked")

    @wf.track(f"{unique}-job")
    async def job(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    now = datetime.now(UTC)
    schedule = Schedule(
        id=uuid.uuid4(),
        name=f"{unique}-nightly",
        cron=CronExpression.parse("0 3 * * *"),
        job_type="report",
        enabled=True,
        timezone="UTC",
        target=f"{unique}-job",
        payload={"k": 1},
        priority=Priority.NORMAL,
        overlap_policy=OverlapPolicy.ALLOW,
        timeout_s=None,
        misfire_grace_s=None,
        created_at=now,
        updated_at=now,
    )
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    telemetry.add_span_processor(processor)
    cid = f"{unique}-tick"
    try:
        async with Runtime(list(wf), settings=settings):
            await TickPublisher(js).publish(schedule, now, cid)

            async def done() -> bool:
                status = await pool.fetchval(
                    "SELECT status FROM workflow_runs WHERE correlation_id = $1", cid
                )
                return status == "completed"

            await eventually(done, what="the ticked run to complete")
    finally:
        telemetry.remove_span_processor(processor)
    spans = [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("messaging.message.conversation_id") == cid
    ]
    by_name = {s.name: s for s in spans}
    tick = by_name[f"tick {unique}-nightly"]
    assert tick.parent is None and tick.kind is SpanKind.INTERNAL
    assert {s.context.trace_id for s in spans} == {tick.context.trace_id}
    publish = by_name[f"publish tracks.{unique}-job.run"]
    assert publish.parent is not None and publish.parent.span_id == tick.context.span_id
    step = by_name[f"process {unique}-job"]
    assert step.parent is not None and step.parent.span_id == publish.context.span_id
