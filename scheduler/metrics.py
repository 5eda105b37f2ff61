"""The scheduler's metrics and its ``/metrics`` ``/healthz`` ``/readyz`` server (TRACKS_HTTP_PORT).

``tracks_schedule_ticks_total{schedule,result}`` counts every tick decision of this process:
``published``, ``duplicate`` (another replica had published it), ``skipped``, ``queued``,
``released`` (a queued tick published after its run ended) and ``publish_failed``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from foundation import metrics
from foundation.http_probe import ProbeServer
from foundation.otlp_metrics import OtlpExport

if TYPE_CHECKING:
    from scheduler.service import Scheduler

__all__ = ["SchedulerMetrics", "tick_counted"]

TICKS = "tracks_schedule_ticks_total"


def tick_counted(schedule: str, result: str, n: int = 1) -> None:
    if n:
        metrics.counter(TICKS, "Schedule ticks, by what became of them.", ("schedule", "result")).labels(
            schedule, result
        ).inc(n)


class SchedulerMetrics:
    """A scheduler's HTTP server (when a port is given) and OTLP export (when an endpoint is set)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.server: ProbeServer | None = None
        self._otlp: OtlpExport | None = None

    @classmethod
    async def open(cls, scheduler: Scheduler, host: str, port: int | None) -> SchedulerMetrics | None:
        if not metrics.configure(port):
            return None
        self = cls(scheduler)
        if port is not None:
            self.server = ProbeServer(host, port, self.readiness)
            await self.server.start()
        self._otlp = OtlpExport.from_env(f"tracks-scheduler-{scheduler.settings.instance}")
        if self._otlp is not None:
            self._otlp.start()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self._otlp is not None:
            await self._otlp.stop()

    async def readiness(self) -> dict[str, str]:
        s = self.scheduler
        missing: dict[str, str] = {}
        if not s.nc.is_connected:
            missing["nats"] = "not connected"
        try:
            await asyncio.wait_for(s.pool.fetchval("SELECT 1"), 2.0)
        except Exception as exc:
            missing["postgresql"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if not s.listener.ready.is_set():
            missing["consumers"] = "schedules not loaded yet (history consumer, LISTEN)"
        if s.stopping:
            missing["scheduler"] = "stopping"
        return missing
