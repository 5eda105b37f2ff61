"""OpenTelemetry set-up from the standard ``OTEL_*`` variables, and W3C propagation over NATS.

An SDK tracer provider is always installed, so every step has a trace ID to record; spans
are exported only when an exporter is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER``). ``OTEL_SDK_DISABLED=true``
turns tracing off entirely.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["configure_tracing", "extract", "inject", "shutdown_tracing", "trace_id_of", "tracer"]

log = logging.getLogger(__name__)
_PROPAGATOR: TextMapPropagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def configure_tracing(service_name: str) -> None:
    """Install the tracer provider once per process (later calls are no-ops)."""
    global _provider
    if _provider is not None or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    exporter = _exporter_from_env()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
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


def inject(headers: MutableMapping[str, str], context: otel_context.Context | None = None) -> None:
    """Write ``traceparent`` (of ``context``, else the current span) into outgoing NATS headers."""
    _PROPAGATOR.inject(headers, context=context)


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    return _PROPAGATOR.extract(headers or {})


def trace_id_of(span: trace.Span) -> str | None:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
