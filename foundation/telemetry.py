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
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from foundation.lean_spans import LeanSpan, SpanSink

__all__ = [
    "CURRENT",
    "add_span_processor",
    "configure_tracing",
    "continued",
    "extract",
    "inject",
    "inject_span",
    "parent_of",
    "rejoin",
    "remove_span_processor",
    "set_lean_spans",
    "shutdown_tracing",
    "start_span",
    "trace_id_of",
    "traceparent",
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
        return _otlp_exporter()
    return None


def _otlp_exporter() -> SpanExporter:
    """OTLP over ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``: ``http/protobuf`` (the default) or
    ``grpc`` (the optional extra ``tracks[grpc]``; without it, one warning and HTTP)."""
    chosen = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    protocol = (chosen or "http/protobuf").strip().lower()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            log.warning(
                "tracing: OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: "
                "pip install 'tracks[grpc]'; exporting over http/protobuf instead"
            )
        else:
            return GrpcSpanExporter()  # type: ignore[no-any-return,unused-ignore]
    elif protocol != "http/protobuf":
        log.warning(
            "tracing: OTLP protocol %r is not supported (http/protobuf or grpc); exporting over "
            "http/protobuf",
            protocol,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


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


@contextmanager
def continued(
    name: str, stored: str | None, attributes: dict[str, Any], *, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[trace.Span]:
    """A current span continuing the trace whose ``traceparent`` was ``stored`` (a run's, read from
    the database: ``tracks proceed`` and ``resume``, the timeout sweep); what is published inside
    belongs to that trace. With nothing stored, a child of the current span. Not for hot paths."""
    parent = parent_of({"traceparent": stored}) if stored else CURRENT
    span = start_span(name, kind=kind, attributes=attributes, parent=parent)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except Exception as exc:
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        otel_context.detach(token)
        span.end()


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


def traceparent(span: trace.Span) -> str | None:
    """``span``'s W3C ``traceparent`` (what a run stores to be continued later), or ``None``."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def rejoin(span: trace.Span, parent: SpanContext) -> bool:
    """Move a started span into ``parent``'s trace (its parent becomes ``parent``, and it links to
    the parent it had): a step whose message came from another trace joins its run's trace.

    Only before the span has children (a step calls it right after its claim). Relies on the span
    keeping its context in ``_context`` and its parent in ``_parent``: true of lean spans and of the
    SDK's (``tests/foundation/test_run_trace.py`` checks both). ``False`` when nothing changed."""
    ctx = span.get_span_context()
    if not ctx.is_valid or not parent.is_valid or ctx.trace_id == parent.trace_id:
        return False
    if not span.is_recording() or not hasattr(span, "_parent"):
        return False
    before = span._parent
    span._context = SpanContext(  # type: ignore[attr-defined]
        parent.trace_id, ctx.span_id, False, ctx.trace_flags, parent.trace_state or ctx.trace_state
    )
    span._parent = parent
    if before is not None:
        span.add_link(before, {"tracks.link": "delivered_by"})
    return True


def trace_id_of(span: trace.Span) -> str | None:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
