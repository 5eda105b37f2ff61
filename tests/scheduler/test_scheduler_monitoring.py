"""ResourceMonitor snapshots and their publication on core NATS (outside the TRACKS stream)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from nats.aio.client import Client as NATS

from foundation.monitoring import ResourceMonitor, metrics_subject, report_resources


async def test_snapshot_measures_this_process(nc: NATS) -> None:
    monitor = ResourceMonitor("tests", "one")
    sum(i * i for i in range(200_000))  # some CPU
    snap = monitor.snapshot()
    assert snap.rss_bytes > 10_000_000
    assert snap.connections >= 1  # at least the NATS connection of the nc fixture
    assert snap.cpu_percent >= 0
    assert snap.uptime_s > 0
    assert snap.component == "tests"


async def test_reporter_publishes_json_on_tracksapi_metrics(nc: NATS, unique: str) -> None:
    subject = metrics_subject("scheduler", f"host.{unique}")
    assert subject == f"tracksapi.metrics.scheduler.host_{unique}"
    sub = await nc.subscribe(subject)
    stop = asyncio.Event()
    task = asyncio.create_task(
        report_resources(nc, ResourceMonitor("scheduler", f"host.{unique}"), 0.05, stop)
    )
    try:
        first = await sub.next_msg(timeout=2)
        second = await sub.next_msg(timeout=2)
    finally:
        stop.set()
        await task
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    for msg in (first, second):
        data = json.loads(msg.data)
        assert {
            "component",
            "instance",
            "pid",
            "cpuPercent",
            "rssBytes",
            "connections",
            "uptimeS",
        } <= data.keys()
        assert data["rssBytes"] > 0
    assert task.done()
