"""``tracks scheduler run`` (the cron tick publisher) and ``tracks scheduler bench``.

Apart from ``tracks schedule ...`` (:mod:`tracks.cli.schedule`), which manages schedules in
PostgreSQL and starts without the service, OpenTelemetry and pydantic.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import click

from foundation.connections import connect_nats
from foundation.db import create_pool, migrate
from foundation.settings import SettingsError, load
from foundation.telemetry import configure_tracing, shutdown_tracing
from scheduler.settings import SchedulerSettings
from subjects import dlq_stream, ensure_streams, tracks_stream
from tracks.cli._common import async_command, get_settings, invalid_settings
from tracks.endpoints import resolve_endpoints, with_endpoints

__all__ = ["scheduler"]


def _scheduler_settings() -> SchedulerSettings:
    try:
        return load(SchedulerSettings, "TRACKS_SCHEDULER_")
    except SettingsError as exc:
        raise invalid_settings(exc) from None


@click.group()
def scheduler() -> None:
    """The cron tick publisher (see `tracks schedule` to manage schedules)."""


@scheduler.command("run")
@async_command
async def run_cmd() -> None:
    """Fire enabled schedules until SIGTERM/SIGINT; several replicas may run at once."""
    from scheduler.service import Scheduler

    settings = get_settings()
    sched_settings = _scheduler_settings()
    configure_tracing("tracks-scheduler", lean_spans=settings.lean_spans)
    settings, endpoints = with_endpoints(settings)  # on the embedded cluster: its replicas
    # waits for PostgreSQL as an actor does (TRACKS_CONNECT_WAIT_S, one line while it waits)
    pool = await create_pool(
        endpoints.database_url, max_size=settings.db_pool_size, wait_s=settings.connect_wait_s
    )
    async with pool.acquire() as conn:
        await migrate(conn)
    nc = await connect_nats(settings, endpoints.nats_url, name=f"tracks-scheduler-{sched_settings.instance}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await ensure_streams(
            nc.jetstream(),
            tracks_stream(max_age_s=settings.stream_max_age_s, duplicate_window_s=settings.duplicate_window_s,
                          replicas=settings.stream_replicas, max_bytes=settings.stream_max_bytes),
            dlq_stream(max_age_s=settings.dlq_max_age_s, replicas=settings.stream_replicas,
                       max_bytes=settings.dlq_max_bytes),
        )  # fmt: skip
        service = Scheduler(
            nc=nc,
            pool=pool,
            dsn=endpoints.database_url,
            settings=sched_settings,
            duplicate_window_s=settings.duplicate_window_s,
            http_port=settings.http_port,
            http_host=settings.http_host,
        )
        async with service:
            click.echo(
                f"scheduler {sched_settings.instance} ready: {len(service.loaded)} schedule(s)", err=True
            )
            await stop.wait()
            click.echo("scheduler stopping", err=True)
    finally:
        await pool.close()
        if not nc.is_closed:  # closed for good (the reason was logged): nothing left to drain
            await nc.drain()
        shutdown_tracing()


@scheduler.command("bench")
@click.option("--schedules", default=1000, show_default=True, help="Schedules firing every few seconds.")
@click.option("--seconds", default=30.0, show_default=True, help="How long to measure tick lateness.")
@click.option(
    "--rss-schedules", default=10_000, show_default=True, help="Schedules loaded for the RSS figure."
)
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Also write the figures."
)
@async_command
async def bench_cmd(schedules: int, seconds: float, rss_schedules: int, json_file: Path | None) -> None:
    """Tick lateness p50/p99 under load, and scheduler RSS with many schedules loaded."""
    from tracks.bench.scheduler import run_scheduler_bench

    endpoints = resolve_endpoints(get_settings())
    result = await run_scheduler_bench(
        endpoints.nats_url,
        endpoints.database_url,
        schedules=schedules,
        seconds=seconds,
        rss_schedules=rss_schedules,
    )
    text = json.dumps(result, indent=2)
    click.echo(text)
    if json_file is not None:
        await asyncio.to_thread(json_file.write_text, text + "\n")
