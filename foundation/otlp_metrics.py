"""OTLP export of this process's metrics: the registry of :mod:`foundation.metrics`, as scraped.

Every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60 000) the registry is collected, converted to
the OpenTelemetry SDK's metric data (cumulative) and handed to the OTLP metric exporter of
``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``,
the default, or ``grpc`` when opentelemetry-exporter-otlp-proto-grpc is installed), at
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``. Counters go out under
their base name (``tracks_steps``: an OTLP consumer that writes Prometheus adds ``_total`` back).
Recording stays the cheap Prometheus ``inc()``/``observe()``: nothing per step goes through the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import Metric as PromMetric

from foundation import metrics

__all__ = ["OtlpExport", "to_metrics_data"]

log = logging.getLogger(__name__)


def to_metrics_data(
    families: Iterable[PromMetric], resource: Resource, start_ns: int, now_ns: int | None = None
) -> MetricsData:
    """Collected Prometheus families as the SDK's metric data (cumulative)."""
    now_ns = now_ns or time.time_ns()
    metrics: list[Metric] = []
    for family in families:
        unit = "s" if family.name.endswith("_seconds") else ""
        if family.type == "counter":
            points = [
                NumberDataPoint(dict(s.labels), start_ns, now_ns, s.value)
                for s in family.samples
                if s.name.endswith("_total")
            ]
            data: Sum | Gauge | Histogram = Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
        elif family.type == "gauge":
            data = Gauge([NumberDataPoint(dict(s.labels), start_ns, now_ns, s.value) for s in family.samples])
        elif family.type == "histogram":
            data = Histogram(_histogram_points(family, start_ns, now_ns), AggregationTemporality.CUMULATIVE)
        else:
            continue
        metrics.append(Metric(family.name, family.documentation, unit, data))
    scope = InstrumentationScope("tracks")
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, metrics, "")], "")])


_UNKNOWN: Any = None
"""A histogram's min and max: Prometheus keeps neither, so they are left unset on the wire."""


def _histogram_points(family: PromMetric, start_ns: int, now_ns: int) -> list[HistogramDataPoint]:
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in family.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "count": 0, "sum": 0.0})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            entry["count"] = int(s.value)
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    points = []
    for key, entry in series.items():
        cumulative = sorted(entry["buckets"])
        counts, previous = [], 0.0
        for _, value in cumulative:  # Prometheus buckets are cumulative, OTLP's are not
            counts.append(int(value - previous))
            previous = value
        bounds = [le for le, _ in cumulative if le != float("inf")]
        points.append(
            HistogramDataPoint(
                dict(key),
                start_ns,
                now_ns,
                entry["count"],
                entry["sum"],
                counts,
                bounds,
                min=_UNKNOWN,
                max=_UNKNOWN,
            )
        )
    return points


def _exporter() -> MetricExporter | None:
    protocol = (
        (
            os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        .strip()
        .lower()
    )
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPMetricExporter as GrpcExporter,
            )
        except ImportError:
            log.error(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc but opentelemetry-exporter-otlp-proto-grpc is not "
                "installed (pip install tracks[grpc]): metrics are not exported over OTLP"
            )
            return None
        exporter: MetricExporter = GrpcExporter()
        return exporter
    if protocol != "http/protobuf":
        log.error(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported for metrics (use http/protobuf or grpc): "
            "metrics are not exported over OTLP",
            protocol,
        )
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


class OtlpExport:
    """Export the registry over OTLP every ``OTEL_METRIC_EXPORT_INTERVAL`` ms, and once at stop."""

    def __init__(self, service_name: str, exporter: MetricExporter, interval_s: float) -> None:
        self._exporter = exporter
        self._interval_s = interval_s
        self._resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
        self._start_ns = time.time_ns()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, service_name: str) -> OtlpExport | None:
        if not metrics.enabled() or metrics.otlp_endpoint() is None:
            return None
        exporter = _exporter()
        if exporter is None:
            return None
        try:
            interval_s = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000
        except ValueError:
            interval_s = 60.0
        return cls(service_name, exporter, max(interval_s, 0.1))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="otlp-metrics")

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval_s)
            await self.export()

    async def export(self) -> None:
        data = to_metrics_data(metrics.registry().collect(), self._resource, self._start_ns)
        try:
            await asyncio.to_thread(self._exporter.export, data, timeout_millis=10_000)
        except Exception as exc:  # the collector may be away: the next round sends the totals
            log.warning("exporting metrics over OTLP failed: %s", exc)

    async def stop(self) -> None:
        """A last export (the final totals), then the exporter's shutdown."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self._exporter.shutdown)
