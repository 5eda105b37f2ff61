"""One CONSUMER span per track step, parented on the ``traceparent`` the message carried."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode

from tracks import telemetry

from .middleware import Next, Step

__all__ = ["TracingMiddleware"]


class TracingMiddleware:
    async def __call__(self, step: Step, call_next: Next) -> None:
        parent = telemetry.extract(step.msg.headers)
        meta = step.msg.metadata
        with telemetry.tracer().start_as_current_span(
            f"{step.track.name} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": step.msg.subject,
                "messaging.consumer.group.name": step.track.name,
                "messaging.message.conversation_id": step.ctx.correlation_id,
                "messaging.message.id": str(meta.sequence.stream),
                "messaging.nats.delivery_count": meta.num_delivered,
                "tracks.track": step.track.name,
            },
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            step.ctx.trace_id = telemetry.trace_id_of(span)
            await call_next(step)
            span.set_attribute("tracks.verdict", str(step.verdict))
            span.set_status(Status(StatusCode.OK))
