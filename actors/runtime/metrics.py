"""The actor runtime's metrics, its ``/metrics`` ``/healthz`` ``/readyz`` server and its readiness.

Counted where they happen (labels bound once per track, so a step costs an ``inc()`` and an
``observe()``): ``tracks_steps_total{track,outcome}`` and ``tracks_step_duration_seconds{track}``
by :mod:`actors.runtime.settlement`, ``tracks_runs_total{workflow,status}`` where a run's end is
announced (:mod:`actors.ledger.runs`). Read when scraped, at no cost to the steps:
``tracks_in_flight{track}`` and ``tracks_breaker_state{track}`` from the workers, and
``tracks_consumer_pending{track}`` and ``tracks_dlq_messages`` from JetStream, polled every
:data:`POLL_S` seconds (not per step, not per scrape).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from foundation import metrics
from foundation.http_probe import ProbeServer
from foundation.otlp_metrics import OtlpExport
from subjects import DLQ_STREAM, STREAM

if TYPE_CHECKING:
    from actors.runtime.process import Runtime

__all__ = [
    "BREAKER_LEVELS",
    "DURATION_BUCKETS",
    "FLOW_WAIT",
    "POLL_S",
    "RuntimeMetrics",
    "StepMetrics",
    "flow_wait",
    "run_ended",
]

log = logging.getLogger(__name__)

POLL_S = 5.0
"""How often consumer and DLQ counts are asked of JetStream while metrics are on."""
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}

STEPS = "tracks_steps_total"
DURATION = "tracks_step_duration_seconds"
START_LAG = "tracks_start_lag_seconds"
RUNS = "tracks_runs_total"


class StepMetrics:
    """One track's step counters and duration histogram, labels bound once."""

    __slots__ = (
        "cancelled",
        "completed",
        "dead_lettered",
        "duration",
        "handed_back",
        "poison",
        "retried",
        "skipped",
        "start_lag",
        "superseded",
    )

    def __init__(self, track: str) -> None:
        steps = metrics.counter(STEPS, "Steps settled, by how they ended.", ("track", "outcome"))
        self.completed = steps.labels(track, "completed")
        self.retried = steps.labels(track, "retried")
        """The handler failed; the message comes back after a back-off."""
        self.dead_lettered = steps.labels(track, "dead_lettered")
        """Failed for good (permanent error, last try, never settled, unexpected): in the DLQ."""
        self.poison = steps.labels(track, "poison")
        """Unusable on arrival (undecodable, wrong input): in the DLQ without a try."""
        self.skipped = steps.labels(track, "skipped")
        """Acked without running: duplicate, already done, gated, waiting, closed."""
        self.superseded = steps.labels(track, "superseded")
        """Finished after another replica had taken the step over: not announced."""
        self.cancelled = steps.labels(track, "cancelled")
        """The run was cancelled while the step ran, and the handler stopped."""
        self.handed_back = steps.labels(track, "handed_back")
        """Fetched but not started (breaker, shutdown, claim refused): back to the stream."""
        self.duration = metrics.histogram(
            DURATION, "Time from a step's start to its outcome.", ("track",), DURATION_BUCKETS
        ).labels(track)
        self.start_lag = metrics.histogram(
            START_LAG,
            "Time from the stream storing a message to its first delivery's step starting.",
            ("track",),
            metrics.WAIT_BUCKETS,
        ).labels(track)
        """Delivery and the wait for a slot (and flow limits) of first deliveries: consumer lag in time."""


def run_ended(workflow: str, status: str) -> None:
    """This process announced the end of a run of ``workflow``."""
    metrics.counter(RUNS, "Workflow runs whose end this process announced.", ("workflow", "status")).labels(
        workflow, str(status)
    ).inc()


class _Gauges:
    """Read the live runtimes' workers when scraped (one collector for the process)."""

    def __init__(self) -> None:
        self.sources: weakref.WeakSet[RuntimeMetrics] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "tracks_in_flight", "Messages a worker holds (running or waiting).", labels=["track"]
        )
        breaker = GaugeMetricFamily(
            "tracks_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", labels=["track"]
        )
        pending = GaugeMetricFamily(
            "tracks_consumer_pending",
            "Messages in the stream the track's consumer has not delivered yet.",
            labels=["track"],
        )
        dlq = GaugeMetricFamily("tracks_dlq_messages", "Messages in the DLQ stream.")
        dlq_seen: int | None = None
        for source in list(self.sources):
            for name, worker in source.runtime.workers.items():
                in_flight.add_metric([name], worker.in_flight)
                breaker.add_metric([name], BREAKER_LEVELS.get(str(worker.breaker.state), 0))
                if name in source.pending:
                    pending.add_metric([name], source.pending[name])
            if source.dlq is not None:
                dlq_seen = source.dlq
        if dlq_seen is not None:
            dlq.add_metric([], dlq_seen)
        yield from (in_flight, breaker, pending, dlq)


_gauges = _Gauges()


class RuntimeMetrics:
    """A runtime's HTTP server (when ``TRACKS_HTTP_PORT`` is set), JetStream poll and OTLP export."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pending: dict[str, int] = {}
        self.dlq: int | None = None
        self.server: ProbeServer | None = None
        self._otlp: OtlpExport | None = None
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, runtime: Runtime) -> RuntimeMetrics | None:
        """Before the runtime connects: ``/healthz`` answers and ``/readyz`` says what is missing."""
        s = runtime.settings
        if not metrics.configure(s.http_port):
            return None
        self = cls(runtime)
        metrics.register("tracks-runtime", _gauges)
        _gauges.sources.add(self)
        if s.http_port is not None:
            self.server = ProbeServer(s.http_host, s.http_port, self.readiness)
            await self.server.start()
        self._otlp = OtlpExport.from_env(runtime.name)
        if self._otlp is not None:
            self._otlp.start()
        self._poller = asyncio.create_task(self._poll(), name="metrics-poll")
        return self

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()
        if self._otlp is not None:
            await self._otlp.stop()
        _gauges.sources.discard(self)

    async def readiness(self) -> dict[str, str]:
        rt = self.runtime
        missing: dict[str, str] = {}
        if rt.nc is None or not rt.nc.is_connected:
            missing["nats"] = "not connected" if rt.nc is not None else "not connected yet"
        if rt.pool is None:
            missing["postgresql"] = "not connected yet"
        else:
            try:
                await asyncio.wait_for(rt.pool.fetchval("SELECT 1"), 2.0)
            except Exception as exc:
                missing["postgresql"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        unbound = [t.name for t in rt.tracks if t.name not in rt.workers]
        if unbound or rt.api is None:
            missing["consumers"] = "not bound yet: " + ", ".join(unbound or ["request API"])
        if rt.stopping:
            missing["runtime"] = "stopping"
        return missing

    async def _poll(self) -> None:
        """Every :data:`POLL_S` seconds; until the consumers are bound, every half second."""
        while True:
            nc, workers = self.runtime.nc, list(self.runtime.workers)
            if nc is not None and nc.is_connected and workers:
                js = nc.jetstream()
                for name in workers:
                    with contextlib.suppress(Exception):  # a consumer deleted under us, NATS away
                        self.pending[name] = (await js.consumer_info(STREAM, name, timeout=2.0)).num_pending
                with contextlib.suppress(Exception):
                    self.dlq = (await js.stream_info(DLQ_STREAM)).state.messages
            await asyncio.sleep(POLL_S if self.pending else 0.5)


FLOW_WAIT = "tracks_flow_wait_seconds"
FLOW_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def flow_wait(limit: str) -> metrics.Observing:
    """Time a step waited at its track's gate before ``limit`` (and its others) let it start."""
    return metrics.histogram(
        FLOW_WAIT, "Time a step waited for its flow limits, by limit.", ("limit",), FLOW_WAIT_BUCKETS
    ).labels(limit)
