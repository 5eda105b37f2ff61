"""One CONSUMER span per track step, parented on the ``traceparent`` the message carried.

Spans are lean ones (:mod:`foundation.lean_spans`), started and attached by hand rather than
with ``start_as_current_span``: on a path that runs thousands of times a second the SDK's
spans and its generator-based context managers cost more than the step's own work.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from actors.middleware.base import Completed, Next, Outcome, Step
from foundation import telemetry

__all__ = ["TracingMiddleware"]

_OK = Status(StatusCode.OK)


class TracingMiddleware:
    async def __call__(self, step: Step, call_next: Next) -> Outcome:
        span = telemetry.start_span(
            f"{step.track.name} process",
            parent=telemetry.parent_of(step.msg.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": step.msg.subject,
                "messaging.message.conversation_id": step.ctx.correlation_id,
                "messaging.nats.delivery_count": step.ctx.deliveries,
            },
        )
        step.trace_context = trace.set_span_in_context(span)
        token = otel_context.attach(step.trace_context)
        try:
            step.ctx.trace_id = telemetry.trace_id_of(span)
            outcome = await call_next(step)
            span.set_attribute(
                "tracks.verdict", "run" if isinstance(outcome, Completed) else str(outcome.verdict)
            )
            span.set_status(_OK)
            return outcome
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end()
