"""The resource guard: pause fetching while the process is CPU-bound, stop cleanly when it is too big.

Off unless a threshold is set. Every ``TRACKS_GUARD_INTERVAL_S`` it samples this process
(:class:`foundation.monitoring.ResourceMonitor`, its own instance so its CPU reading is not
shared with the metrics reporter):

- **CPU** — once the process has stayed at or above ``TRACKS_GUARD_CPU_PERCENT`` (100: one core)
  for ``TRACKS_GUARD_CPU_FOR_S``, every track stops fetching (:meth:`TrackWorker.pause`: steps
  already fetched still run and settle, nothing new is taken; other replicas take the work), and
  a ``resource_cpu`` alert fires. The first sample below the threshold resumes fetching, and the
  alert is sent again with ``endsAt`` set.
- **Memory** — once the RSS reaches ``TRACKS_GUARD_MEMORY_MB``, a ``resource_memory`` alert
  (critical) fires and the runtime stops as on SIGTERM (:meth:`Runtime.request_stop`: nothing new
  is fetched, in-flight steps finish within ``TRACKS_SHUTDOWN_GRACE_S``, what is unfinished goes
  back to JetStream), so a supervisor can start a fresh process.

Alerts use the alert envelope on ``tracks.alerts.<kind>`` and the alert webhook, like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import psutil  # type: ignore[import-untyped]

from actors.failures.alert_webhook import AlertWebhook
from actors.runtime.worker import TrackWorker
from foundation.jetstream.publisher import EventPublisher
from foundation.monitoring import ResourceMonitor, ResourceSnapshot
from foundation.settings import Settings
from subjects import headers, names
from subjects.alerts import AlertEnvelope, AlertKind, Severity

__all__ = ["ResourceGuard"]

log = logging.getLogger(__name__)


class ResourceGuard:
    def __init__(
        self,
        workers: Mapping[str, TrackWorker],
        publisher: EventPublisher,
        *,
        cpu_percent: float | None,
        cpu_for_s: float,
        memory_mb: float | None,
        interval_s: float,
        on_memory: Callable[[], None],
        monitor: ResourceMonitor,
        webhook: AlertWebhook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workers = workers
        self._publisher = publisher
        self.cpu_percent = cpu_percent
        """Settable while running (``None``: off); the next sample uses it."""
        self.cpu_for_s = cpu_for_s
        self.memory_mb = memory_mb
        self._interval_s = interval_s
        self._on_memory = on_memory
        self._monitor = monitor
        self._webhook = webhook
        self._clock = clock
        self._hot_since: float | None = None
        self._paused_at: datetime | None = None
        self.pauses = 0
        self.stopped = False
        self.alerts: list[AlertEnvelope] = []
        """Every alert this guard sent (pauses, resumptions, the memory stop)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        workers: Mapping[str, TrackWorker],
        publisher: EventPublisher,
        *,
        on_memory: Callable[[], None],
        instance: str,
        webhook: AlertWebhook | None = None,
    ) -> ResourceGuard | None:
        """``None`` when no guard threshold is set (the default)."""
        if settings.guard_cpu_percent is None and settings.guard_memory_mb is None:
            return None
        return cls(
            workers,
            publisher,
            cpu_percent=settings.guard_cpu_percent,
            cpu_for_s=settings.guard_cpu_for_s,
            memory_mb=settings.guard_memory_mb,
            interval_s=settings.guard_interval_s,
            on_memory=on_memory,
            monitor=ResourceMonitor("guard", instance),
            webhook=webhook,
        )

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self.stopped:
            try:
                await self.check(self._monitor.snapshot())
            except psutil.Error as exc:
                log.warning("resource guard: no sample: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
        if self.paused:  # stopping: nothing left to hold back
            for worker in self._workers.values():
                worker.resume()

    async def check(self, snap: ResourceSnapshot) -> None:
        """Apply one sample: pause, resume or stop."""
        rss_mb = snap.rss_bytes / 1e6
        if self.memory_mb is not None and rss_mb >= self.memory_mb and not self.stopped:
            self.stopped = True
            summary = (
                f"actor {snap.instance} stopped by the resource guard: RSS {rss_mb:.0f} MB reached "
                f"TRACKS_GUARD_MEMORY_MB={self.memory_mb:g}; in-flight steps finish, the rest is redelivered"
            )
            log.critical("%s", summary)
            await self._alert(
                AlertKind.RESOURCE_MEMORY, Severity.CRITICAL, summary, snap, rssMb=round(rss_mb, 1)
            )
            self._on_memory()
            return
        threshold = self.cpu_percent
        hot = threshold is not None and snap.cpu_percent >= threshold
        now = self._clock()
        if not hot:
            self._hot_since = None
            if self.paused:
                await self._resume(snap)
            return
        if self._hot_since is None:
            self._hot_since = now
        if not self.paused and now - self._hot_since >= self.cpu_for_s:
            await self._pause(snap, now - self._hot_since)

    async def _pause(self, snap: ResourceSnapshot, for_s: float) -> None:
        self._paused_at = datetime.now(UTC)
        self.pauses += 1
        for worker in self._workers.values():
            worker.pause()
        summary = (
            f"actor {snap.instance} paused fetching on tracks {', '.join(self._workers)}: CPU "
            f"{snap.cpu_percent:.0f}% at or above TRACKS_GUARD_CPU_PERCENT={self.cpu_percent:g} for "
            f"{for_s:.0f} s; in-flight steps go on, fetching resumes when CPU drops"
        )
        log.warning("%s", summary)
        await self._alert(
            AlertKind.RESOURCE_CPU,
            Severity.WARNING,
            summary,
            snap,
            starts_at=self._paused_at,
            forS=round(for_s, 1),
        )

    async def _resume(self, snap: ResourceSnapshot) -> None:
        started, self._paused_at = self._paused_at, None
        for worker in self._workers.values():
            worker.resume()
        cpu = f"{snap.cpu_percent:.0f}%"
        summary = f"actor {snap.instance} resumed fetching: CPU {cpu} is below the guard's threshold"
        log.warning("%s", summary)
        await self._alert(AlertKind.RESOURCE_CPU, Severity.INFO, summary, snap, starts_at=started, ended=True)

    async def _alert(
        self,
        kind: AlertKind,
        severity: Severity,
        summary: str,
        snap: ResourceSnapshot,
        *,
        starts_at: datetime | None = None,
        ended: bool = False,
        **details: object,
    ) -> None:
        now = datetime.now(UTC)
        alert = AlertEnvelope(
            kind=kind,
            severity=severity,
            summary=summary,
            labels={"alertname": f"tracks_{kind}", "instance": snap.instance},
            starts_at=starts_at or now,
            ends_at=now if ended else None,
            source=snap.instance,
            details={
                "cpuPercent": snap.cpu_percent,
                "rssBytes": snap.rss_bytes,
                "cpuThreshold": self.cpu_percent,
                "cpuForS": self.cpu_for_s,
                "memoryThresholdMb": self.memory_mb,
                "tracks": list(self._workers),
                **details,
            },
        )
        self.alerts.append(alert)
        if self._webhook is not None:
            self._webhook.send(alert)
        try:
            await self._publisher.publish(
                names.alert(kind),
                alert.to_bytes(),
                {headers.MSG_ID: f"{kind}:{snap.instance}:{time.time_ns()}"},
            )
        except Exception as exc:  # an alert that cannot be sent must not keep the guard from acting
            log.warning("resource guard: could not publish the %s alert: %s", kind, exc)
