"""Resource monitoring: CPU, memory, connections and uptime of this process, logged and published.

Snapshots go to core NATS on ``tracksapi.metrics.<component>.<instance>`` — deliberately not
under ``tracks.``, which the ``TRACKS`` stream captures: metrics are for live dashboards, not
for the durable log. Used by the scheduler; the actor runtime reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from datetime import UTC, datetime

import psutil  # type: ignore[import-untyped]
from nats.aio.client import Client as NATS
from pydantic import AliasGenerator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from subjects import names

__all__ = ["METRICS_ROOT", "ResourceMonitor", "ResourceSnapshot", "metrics_subject", "report_resources"]

log = logging.getLogger(__name__)

METRICS_ROOT = names.METRICS_ROOT
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class ResourceSnapshot(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        serialize_by_alias=True,
        frozen=True,
    )

    component: str
    instance: str
    pid: int
    cpu_percent: float
    """Since the previous snapshot; 100 is one full core."""
    rss_bytes: int
    connections: int
    """Open internet sockets of this process (NATS, PostgreSQL, ...)."""
    uptime_s: float
    taken_at: datetime


def metrics_subject(component: str, instance: str) -> str:
    return f"{METRICS_ROOT}.{_UNSAFE.sub('_', component)}.{_UNSAFE.sub('_', instance)}"


class ResourceMonitor:
    def __init__(self, component: str, instance: str, pid: int | None = None) -> None:
        self.component = component
        self.instance = instance
        self._process = psutil.Process(pid or os.getpid())
        self._process.cpu_percent(None)  # prime: the first reading is relative to this one
        self._started = self._process.create_time()

    def snapshot(self) -> ResourceSnapshot:
        with self._process.oneshot():
            cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
        try:
            connections = len(self._process.net_connections(kind="inet"))
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            connections = -1
        return ResourceSnapshot(
            component=self.component,
            instance=self.instance,
            pid=self._process.pid,
            cpu_percent=cpu,
            rss_bytes=rss,
            connections=connections,
            uptime_s=max(0.0, time.time() - self._started),
            taken_at=datetime.now(UTC),
        )


async def report_resources(
    nc: NATS, monitor: ResourceMonitor, interval_s: float, stop: asyncio.Event
) -> None:
    """Every ``interval_s``: one log line and one JSON snapshot on core NATS, until ``stop``."""
    subject = metrics_subject(monitor.component, monitor.instance)
    while not stop.is_set():
        try:
            snap = monitor.snapshot()
        except psutil.Error as exc:
            log.warning("resources: no snapshot: %s", exc)
            await _wait(stop, interval_s)
            continue
        log.info(
            "resources %s/%s: cpu %.1f%% rss %.1f MB connections %d uptime %.0f s",
            snap.component,
            snap.instance,
            snap.cpu_percent,
            snap.rss_bytes / 1e6,
            snap.connections,
            snap.uptime_s,
        )
        if nc.is_connected:
            try:
                await nc.publish(subject, snap.model_dump_json().encode())
            except Exception as exc:  # a metrics hiccup must never stop the component
                log.warning("resources: publish to %s failed: %s", subject, exc)
        await _wait(stop, interval_s)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
