"""Scheduler benchmark: tick lateness under load, and the RSS of a scheduler process with many schedules.

Lateness is measured by the scheduler itself for every tick it publishes: the time the PubAck
arrived minus the scheduled fire time (so it includes APScheduler's wake-up, the claim in
PostgreSQL and the JetStream round trip). RSS is that of a real ``tracks scheduler run``
subprocess, once with no schedules and once with ``rss_schedules`` loaded. Everything the
benchmark creates is named ``bench-<run>-...`` and removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]
from nats.aio.client import Client as NATS

from foundation.connections import connect_nats
from foundation.db import create_pool, init_connection, migrate
from foundation.settings import load_settings
from scheduler.service import Scheduler
from scheduler.settings import SchedulerSettings
from subjects import STREAM, dlq_stream, ensure_streams, tracks_stream

__all__ = ["run_scheduler_bench"]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _insert(pool: asyncpg.Pool, prefix: str, target: str, count: int, cron: str) -> None:
    """``count`` schedules in one statement; ``cron`` may use ``{i}``-based fields via SQL below."""
    await pool.execute(
        f"""INSERT INTO job_schedules (name, cron_expression, job_type, target, overlap_policy)
            SELECT $1 || i, {cron}, 'bench', $2, 'allow' FROM generate_series(0, $3 - 1) AS i""",
        prefix, target, count,
    )  # fmt: skip


async def _lateness(
    nc: NATS, pool: asyncpg.Pool, dsn: str, run: str, schedules: int, seconds: float, period_s: int
) -> dict[str, Any]:
    prefix, target = f"bench-{run}-late-", f"bench{run}"
    # Spread over the period: schedule i fires at seconds i % period, i % period + period, ...
    await _insert(pool, prefix, target, schedules, f"(i % {period_s})::text || '/{period_s} * * * * *'")
    settings = SchedulerSettings(
        standard_schedules=False,
        name_prefix=prefix,
        history_consumer=f"bench-history-{run}",
        metrics_interval_s=3600,
        instance=f"bench-{run}",
    )
    started = time.monotonic()
    async with Scheduler(nc=nc, pool=pool, dsn=dsn, settings=settings) as service:
        load_s = time.monotonic() - started
        await asyncio.sleep(period_s + 1)  # warm up: one full period
        stats = service.stats
        stats.lateness_ms.clear()
        before = stats.published
        service.monitor.snapshot()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        published = stats.published - before
        lateness = list(stats.lateness_ms)
        snap = service.monitor.snapshot()
    return {
        "schedules": schedules,
        "cron": f"<i % {period_s}>/{period_s} * * * * * (seconds field first)",
        "measured_s": round(elapsed, 2),
        "load_s": round(load_s, 3),
        "ticks_published": published,
        "ticks_expected": round(schedules * elapsed / period_s),
        "ticks_per_s": round(published / elapsed, 1),
        "skipped": stats.skipped,
        "publish_failures": stats.publish_failures,
        "lateness_ms": {
            "p50": round(_percentile(lateness, 0.50), 2),
            "p90": round(_percentile(lateness, 0.90), 2),
            "p99": round(_percentile(lateness, 0.99), 2),
            "max": round(max(lateness, default=float("nan")), 2),
            "mean": round(statistics.fmean(lateness), 2) if lateness else None,
        },
        "bench_process": {"cpu_percent": snap.cpu_percent, "rss_mb": round(snap.rss_bytes / 1e6, 1)},
    }


async def _scheduler_rss(nats_url: str, dsn: str, run: str, prefix: str, settle_s: float) -> dict[str, Any]:
    env = {
        **os.environ,
        "TRACKS_NATS_URL": nats_url,
        "TRACKS_DATABASE_URL": dsn,
        "TRACKS_SCHEDULER_STANDARD_SCHEDULES": "false",
        "TRACKS_SCHEDULER_NAME_PREFIX": prefix,
        "TRACKS_SCHEDULER_HISTORY_CONSUMER": f"bench-history-{run}",
        "TRACKS_SCHEDULER_METRICS_INTERVAL_S": "3600",
    }
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tracks.cli.main import main; main()", "scheduler", "run",
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        line = b""
        while b"ready" not in line:
            line = await asyncio.wait_for(proc.stderr.readline(), 120)
            if not line:
                raise RuntimeError(f"scheduler exited before it was ready (exit {await proc.wait()})")
        ready_s = time.monotonic() - started
        await asyncio.sleep(settle_s)
        rss = psutil.Process(proc.pid).memory_info().rss
    finally:
        if proc.returncode is None:
            proc.terminate()
        code = await asyncio.wait_for(proc.wait(), 30)
    return {
        "ready_s": round(ready_s, 2),
        "rss_mb": round(rss / 1e6, 1),
        "exit_code": code,
        "line": line.decode().strip(),
    }


async def _rss(
    pool: asyncpg.Pool, nats_url: str, dsn: str, run: str, count: int, settle_s: float
) -> dict[str, Any]:
    prefix = f"bench-{run}-rss-"
    empty = await _scheduler_rss(nats_url, dsn, run, f"{prefix}none-", settle_s=settle_s)
    await _insert(pool, prefix, f"bench{run}", count, "(i % 60)::text || ' ' || (i % 24)::text || ' * * *'")
    loaded = await _scheduler_rss(nats_url, dsn, run, prefix, settle_s=settle_s)
    return {"schedules": count, "baseline": empty, "loaded": loaded, "rss_mb": loaded["rss_mb"]}


async def _cleanup(nc: NATS, pool: asyncpg.Pool, run: str) -> None:
    like = f"bench-{run}-%"
    await pool.execute(
        "DELETE FROM job_executions WHERE schedule_id IN (SELECT id FROM job_schedules WHERE name LIKE $1)",
        like,
    )
    await pool.execute("DELETE FROM job_schedules WHERE name LIKE $1", like)
    js = nc.jetstream()
    with contextlib.suppress(Exception):
        await js.purge_stream(STREAM, subject=f"tracks.bench{run}.>")
    with contextlib.suppress(Exception):
        await js.delete_consumer(STREAM, f"bench-history-{run}")


async def run_scheduler_bench(
    nats_url: str,
    database_url: str,
    schedules: int = 1000,
    seconds: float = 30.0,
    rss_schedules: int = 10_000,
    period_s: int = 5,
    rss_settle_s: float = 3.0,
) -> dict[str, Any]:
    """Tick lateness p50/p99 with ``schedules`` firing every ``period_s`` s; RSS with ``rss_schedules``."""
    settings = load_settings(nats_url=nats_url, database_url=database_url)
    run = uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(database_url)
    try:
        await init_connection(conn)
        await migrate(conn)
    finally:
        await conn.close()
    nc = await connect_nats(settings, nats_url, name=f"scheduler-bench-{run}")
    pool = await create_pool(database_url, max_size=settings.db_pool_size)
    try:
        await ensure_streams(
            nc.jetstream(),
            tracks_stream(
                max_age_s=settings.stream_max_age_s,
                duplicate_window_s=settings.duplicate_window_s,
                max_bytes=settings.stream_max_bytes,
            ),
            dlq_stream(max_age_s=settings.dlq_max_age_s, max_bytes=settings.dlq_max_bytes),
        )
        lateness = await _lateness(nc, pool, database_url, run, schedules, seconds, period_s)
        rss = await _rss(pool, nats_url, database_url, run, rss_schedules, rss_settle_s)
        return {"run": run, "cpus": os.cpu_count(), "lateness": lateness, "rss": rss}
    finally:
        await _cleanup(nc, pool, run)
        await pool.close()
        await nc.drain()
