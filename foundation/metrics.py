"""This process's metrics: Prometheus instruments, scraped from ``/metrics`` and exported over OTLP.

The instruments are prometheus_client's, in one registry per process (not the library's global
one), made once by name. Metrics are on when they have somewhere to go — ``TRACKS_HTTP_PORT``
(:mod:`foundation.http_probe`) or an OTLP endpoint (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``); while they are off every factory hands out :data:`NOOP`, whose
methods do nothing, so instrumented code costs one method call. The hot path binds its labels
once (``counter(...).labels(track, outcome)``): a step then costs an ``inc()`` and an ``observe()``
(under a microsecond together), far less than recording through the OpenTelemetry SDK.

Over OTLP the same registry is exported as it is scraped: :mod:`foundation.otlp_metrics`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import (
    Histogram as PromHistogram,
)
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "NOOP",
    "WAIT_BUCKETS",
    "Counting",
    "LabelledCounter",
    "LabelledHistogram",
    "Observing",
    "configure",
    "counter",
    "enabled",
    "exposition",
    "histogram",
    "histogram_buckets",
    "otlp_endpoint",
    "quantile",
    "register",
    "registry",
]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Counting(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Observing(Protocol):
    def observe(self, amount: float) -> None: ...


class LabelledCounter(Protocol):
    def labels(self, *values: str) -> Counting: ...


class LabelledHistogram(Protocol):
    def labels(self, *values: str) -> Observing: ...


class _NoOp:
    """Every instrument while metrics are off."""

    __slots__ = ()

    def labels(self, *values: str) -> _NoOp:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


NOOP = _NoOp()

WAIT_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.05, 0.075, 0.1, 0.2, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip
"""Buckets of the waits of a step (a commit, a PubAck, a delivery): most are a few milliseconds."""

_registry = CollectorRegistry(auto_describe=False)
_enabled = False
_instruments: dict[str, Any] = {}
_collectors: set[str] = set()


def otlp_endpoint() -> str | None:
    """Where OTLP metrics go, from the standard variables; ``None``: nowhere."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return None
    for name in ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def configure(http_port: int | None, *, local: bool = False) -> bool:
    """Metrics on when there is a port to serve them or an OTLP endpoint, or ``local`` (read in
    this process: ``tracks bench``); once on, on for the process (instruments made while off
    stay no-ops). Returns whether they are on."""
    global _enabled
    if not _enabled and (local or http_port is not None or otlp_endpoint() is not None):
        _enabled = True
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``*_created`` series next to every counter
        ProcessCollector(registry=_registry)
        GCCollector(registry=_registry)
    return _enabled


def enabled() -> bool:
    return _enabled


def registry() -> CollectorRegistry:
    return _registry


def counter(name: str, documentation: str, labels: Sequence[str]) -> LabelledCounter:
    """``name`` as scraped, ending in ``_total``; one per process, made on first use."""
    if not _enabled:
        return NOOP
    made = _instruments.get(name)
    if made is None:
        made = _instruments[name] = Counter(name, documentation, labels, registry=_registry)
    return made


def histogram(
    name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
) -> LabelledHistogram:
    if not _enabled:
        return NOOP
    made = _instruments.get(name)
    if made is None:
        made = _instruments[name] = PromHistogram(
            name, documentation, labels, registry=_registry, buckets=buckets
        )
    return made


def register(key: str, collector: Collector) -> bool:
    """Add a collector (gauges read when scraped) once per process; no-op while metrics are off."""
    if not _enabled or key in _collectors:
        return False
    _collectors.add(key)
    _registry.register(collector)
    return True


def exposition() -> bytes:
    """The Prometheus text format of everything in the registry."""
    return generate_latest(_registry)


def histogram_buckets(name: str) -> dict[tuple[str, ...], dict[float, float]]:
    """This process's histogram ``name`` as cumulative bucket counts (``le`` -> count) per label
    values; empty while metrics are off. Subtract two readings for a window."""
    out: dict[tuple[str, ...], dict[float, float]] = {}
    for family in _registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name != f"{name}_bucket":
                continue
            labels = tuple(v for k, v in sorted(sample.labels.items()) if k != "le")
            out.setdefault(labels, {})[float(sample.labels["le"])] = sample.value
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile``: linear within the bucket holding the q-th observation
    (``buckets``: cumulative counts by upper bound, ``inf`` included); None without observations."""
    bounds = sorted(buckets)
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if upper == float("inf"):
                return lower  # past the last bound: the best known is that bound
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = upper, count
    return None
