"""One CONSUMER span per track step, in its run's trace: one run, one trace.

The span's parent is the ``traceparent`` the message carried (the PRODUCER span of the event or
trigger that activated the step). Right after the claim, :func:`join_run` makes sure the span is
in the run's trace: a message from another trace (a second root triggered on its own, a replay)
is re-parented on the trace the run stored when it opened, linking to the message's own parent;
a fan-in step links to each upstream step it waited for (several causes, one parent).

Names and attributes follow OpenTelemetry's messaging conventions, low-cardinality names only:
``process <track>``; the concrete subject, its template, the message ID and the correlation ID
(``messaging.message.conversation_id``) are attributes.

Spans are lean ones (:mod:`foundation.lean_spans`), started and attached by hand rather than
with ``start_as_current_span``: on a path that runs thousands of times a second the SDK's
spans and its generator-based context managers cost more than the step's own work.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from actors.ledger.store import ClaimResult
from actors.middleware.base import Completed, Next, Outcome, Step
from foundation import telemetry
from subjects import headers, names

__all__ = ["TracingMiddleware", "in_step_trace", "join_run"]

_OK = Status(StatusCode.OK)


class TracingMiddleware:
    async def __call__(self, step: Step, call_next: Next) -> Outcome:
        msg, ctx = step.msg, step.ctx
        template, _ = names.template(msg.subject)
        attributes = {
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": msg.subject,
            "messaging.destination.template": template,
            "messaging.consumer.group.name": step.track.name,  # the track's durable consumer
            "messaging.message.conversation_id": ctx.correlation_id,
            "messaging.nats.delivery_count": ctx.deliveries,
        }
        msg_id = ctx.headers.get(headers.MSG_ID)
        if msg_id:
            attributes["messaging.message.id"] = msg_id
        span = telemetry.start_span(
            f"process {step.track.name}",
            parent=telemetry.parent_of(ctx.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        step.trace_context = trace.set_span_in_context(span)
        token = otel_context.attach(step.trace_context)
        try:
            ctx.trace_id = telemetry.trace_id_of(span)
            step.traceparent = telemetry.traceparent(span)
            outcome = await call_next(step)
            span.set_attribute(
                "tracks.verdict", "run" if isinstance(outcome, Completed) else str(outcome.verdict)
            )
            span.set_status(_OK)
            return outcome
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end()


def join_run(step: Step, claim: ClaimResult) -> None:
    """Put the step's span in its run's trace, and link a fan-in step to its upstream steps.

    Called by the ledger middleware right after the claim (which returns the run's stored
    ``traceparent`` and, for a fan-in, its upstreams'): no database round trip of its own."""
    ctx = step.ctx
    if step.trace_context is None or ctx.trace_id is None:
        return
    run = claim.run_trace
    if run is not None and run[3:35] != ctx.trace_id:  # the usual case compares two strings, no more
        span = trace.get_current_span(step.trace_context)
        parent = telemetry.parent_of({"traceparent": run})
        if parent is not None and telemetry.rejoin(span, parent):
            ctx.trace_id = telemetry.trace_id_of(span)
            step.traceparent = telemetry.traceparent(span)
    if claim.causes:
        span = trace.get_current_span(step.trace_context)
        source = step.activation.source_track
        for track, cause in sorted(claim.causes.items()):
            upstream = telemetry.parent_of({"traceparent": cause}) if cause and track != source else None
            if upstream is not None:
                span.add_link(upstream, {"tracks.upstream": track})


class in_step_trace:
    """Settle inside the step's span, so its events continue the run's trace. A class, not
    ``@contextmanager``: a generator per step costs."""

    __slots__ = ("_context", "_token")

    def __init__(self, step: Step) -> None:
        self._context = step.trace_context
        self._token: object = None

    def __enter__(self) -> None:
        if self._context is not None:
            self._token = otel_context.attach(self._context)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
