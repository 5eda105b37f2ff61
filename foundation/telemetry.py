"""OpenTelemetry set-up from the standard ``OTEL_*`` variables, and W3C propagation over NATS.

An SDK tracer provider is always installed, so every step has a trace ID to record; spans
are exported only when an exporter is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER``). ``OTEL_SDK_DISABLED=true``
turns tracing off entirely. The runtime's own per-step spans are :mod:`foundation.lean_spans`
(:func:`start_span`); everything else may use :func:`tracer` and the SDK.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from foundation.lean_spans import LeanSpan, SpanSink

__all__ = [
    "CURRENT",
    "add_span_processor",
    "configure_tracing",
    "extract",
    "inject",
    "inject_span",
    "parent_of",
    "remove_span_processor",
    "set_lean_spans",
    "shutdown_tracing",
    "start_span",
    "trace_id_of",
    "tracer",
]

log = logging.getLogger(__name__)
_PROPAGATOR: TextMapPropagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_sink = SpanSink()
_default_sampler = True
_lean = True
"""Per-step spans are lean (:mod:`foundation.lean_spans`); ``False`` falls back to the SDK's own
spans (``TRACKS_LEAN_SPANS=false``): the way out should an OpenTelemetry upgrade break them."""
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
CURRENT: Any = object()
"""``start_span(parent=CURRENT)``: the parent is the current span (the default)."""


def set_lean_spans(on: bool) -> None:
    """Lean runtime spans (the default) or the SDK's (see ``_lean``)."""
    global _lean
    _lean = on


def configure_tracing(service_name: str, *, lean_spans: bool = True) -> None:
    """Install the tracer provider once per process (later calls are no-ops)."""
    global _provider, _default_sampler
    set_lean_spans(lean_spans)
    if _provider is not None or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(_sink)
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    _default_sampler = sampler in ("", "parentbased_always_on")
    exporter = _exporter_from_env()
    if exporter is not None:
        _sink.add(BatchSpanProcessor(exporter))
        log.info("tracing: exporting spans with %s", type(exporter).__name__)
    trace.set_tracer_provider(provider)
    _provider = provider
    _reset_tracer()


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def _exporter_from_env() -> SpanExporter | None:
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if chosen == "none":
        return None
    if chosen == "console":
        return ConsoleSpanExporter()
    if chosen == "otlp" or endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def tracer() -> trace.Tracer:
    """The project's tracer, looked up once (``get_tracer`` is costly on a hot path)."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("tracks")
    return _tracer


def _reset_tracer() -> None:
    global _tracer
    _tracer = None


def add_span_processor(processor: SpanProcessor) -> None:
    """Another destination for every span (the runtime's lean ones and SDK ones alike)."""
    _sink.add(processor)


def remove_span_processor(processor: SpanProcessor) -> None:
    _sink.remove(processor)


def start_span(
    name: str, *, kind: SpanKind, attributes: dict[str, Any], parent: SpanContext | None = CURRENT
) -> trace.Span:
    """A runtime span (:class:`~foundation.lean_spans.LeanSpan`): a child of ``parent``, by default
    of the current span; ``parent=None`` starts a new trace. Not recording when tracing is off."""
    if _provider is None:
        return trace.INVALID_SPAN
    if parent is CURRENT:
        current = trace.get_current_span().get_span_context()
        parent = current if current.is_valid else None
    if not _lean:
        root = otel_context.Context()
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent), root) if parent else root
        return tracer().start_span(name, context=context, kind=kind, attributes=attributes)
    return LeanSpan.start(
        name,
        kind=kind,
        parent=parent,
        attributes=attributes,
        provider=_provider,
        sink=_sink,
        default_sampler=_default_sampler,
    )


def parent_of(headers: Mapping[str, str] | None) -> SpanContext | None:
    """The remote parent a message's ``traceparent`` names (W3C), or ``None``."""
    value = headers.get("traceparent") if headers else None
    if not value:
        return None
    match = _TRACEPARENT_00.fullmatch(value)
    if match is not None:
        trace_id, span_id, flags = (int(g, 16) for g in match.groups())
        if not trace_id or not span_id:
            return None
        state = headers.get("tracestate") if headers else None
        return SpanContext(
            trace_id,
            span_id,
            True,
            TraceFlags(flags & TraceFlags.SAMPLED),
            TraceState.from_header([state]) if state else None,
        )
    parent = trace.get_current_span(extract(headers)).get_span_context()  # other versions
    return parent if parent.is_valid else None


def inject_span(headers: MutableMapping[str, str], span: trace.Span) -> None:
    """Write ``span``'s ``traceparent`` (and ``tracestate``) into outgoing NATS headers."""
    ctx = span.get_span_context()
    if ctx.is_valid:
        headers["traceparent"] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        if ctx.trace_state:
            headers["tracestate"] = ctx.trace_state.to_header()


def inject(headers: MutableMapping[str, str], context: otel_context.Context | None = None) -> None:
    """Write ``traceparent`` (of ``context``, else the current span) into outgoing NATS headers."""
    _PROPAGATOR.inject(headers, context=context)


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    return _PROPAGATOR.extract(headers or {})


def trace_id_of(span: trace.Span) -> str | None:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
