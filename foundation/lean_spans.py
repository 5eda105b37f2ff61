"""Recording spans for the runtime's hot path, at a sixth of the SDK span's cost.

Each step records two spans (CONSUMER, and PRODUCER for its event). ``tracks bench``
measured the OpenTelemetry SDK's spans at about 30 % of the runtime's CPU: every SDK span
builds bounded, lock-guarded attribute, event and link containers and validates each value,
and builds a read-only copy when it ends even when nothing will export it. A
:class:`LeanSpan` is a plain ``opentelemetry.trace.Span``: it works with
``trace.set_span_in_context``, ``get_current_span`` and the user's own SDK child spans,
honours the provider's sampler, resource and ID generator, and hands a ``ReadableSpan``
(values validated then) to the span processors only when there are any (an exporter
configured from ``OTEL_*``). Processors see spans when they end, not when they start.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

__all__ = ["LeanSpan", "SpanSink"]

_SCOPE = InstrumentationScope("tracks")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class SpanSink(SpanProcessor):
    """The processors lean spans are handed to; also registered with the provider, so that
    SDK spans (the scheduler's, the user's own) reach the same exporters."""

    def __init__(self) -> None:
        self._processors: list[SpanProcessor] = []

    def add(self, processor: SpanProcessor) -> None:
        self._processors.append(processor)

    def remove(self, processor: SpanProcessor) -> None:
        self._processors.remove(processor)

    def __bool__(self) -> bool:
        return bool(self._processors)

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        for p in self._processors:
            p.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for p in self._processors:
            p.on_end(span)

    def shutdown(self) -> None:
        for p in self._processors:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._processors)


class LeanSpan(trace.Span):
    __slots__ = (
        "_attributes",
        "_context",
        "_end",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_provider",
        "_sink",
        "_start",
        "_status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        provider: TracerProvider,
        sink: SpanSink,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._provider = provider
        self._sink = sink
        self._start = time.time_ns()
        self._end: int | None = None
        self._status = Status(StatusCode.UNSET)
        self._events: list[Event] | None = None
        self._links: list[Link] | None = None

    @classmethod
    def start(
        cls,
        name: str,
        *,
        kind: SpanKind,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        provider: TracerProvider,
        sink: SpanSink,
        default_sampler: bool,
    ) -> trace.Span:
        """A child of ``parent`` (a new trace when ``None``), or a non-recording span if not sampled."""
        ids = provider.id_generator
        trace_id = parent.trace_id if parent is not None else ids.generate_trace_id()
        if default_sampler:  # parentbased_always_on: follow the parent, sample new traces
            sampled, trace_state = parent is None or parent.trace_flags.sampled, None
        else:
            result = provider.sampler.should_sample(
                trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent is not None else None,
                trace_id,
                name,
                kind,
                attributes,
            )
            sampled, trace_state = result.decision is Decision.RECORD_AND_SAMPLE, result.trace_state
            if result.attributes:
                attributes.update(result.attributes)
        if trace_state is None and parent is not None:
            trace_state = parent.trace_state
        context = SpanContext(
            trace_id, ids.generate_span_id(), False, _SAMPLED if sampled else TraceFlags(0), trace_state
        )
        if not sampled:
            return trace.NonRecordingSpan(context)
        return cls(name, context, parent, kind, attributes, provider, sink)

    # --- opentelemetry.trace.Span ------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self._end is None:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end is None:
            self._attributes[key] = value

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self._end is None:
            if self._events is None:
                self._events = []
            bounded = BoundedAttributes(attributes=attributes, immutable=True)
            self._events.append(Event(name, bounded, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end is None and context.is_valid:
            if self._links is None:
                self._links = []
            self._links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end is None:
            self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        fields: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            fields.update(attributes)
        self.add_event("exception", fields, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time.time_ns()
        if self._sink:
            self._sink.on_end(self.readable())

    # --- export ------------------------------------------------------------------------

    def readable(self) -> ReadableSpan:
        """What processors and exporters read (values are validated here, off the hot path)."""
        return ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=self._provider.resource,
            attributes=BoundedAttributes(attributes=self._attributes, immutable=True),
            events=tuple(self._events or ()),
            links=tuple(self._links or ()),
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_scope=_SCOPE,
        )
