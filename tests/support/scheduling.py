"""Running schedulers against the session's servers, and reading what they published."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from foundation.connections import connect_nats
from foundation.db import create_pool
from foundation.settings import Settings
from scheduler.service import Scheduler
from scheduler.settings import SchedulerSettings

__all__ = ["body", "cleanup_schedules", "published", "running_scheduler", "scheduler_settings", "utcnow"]


def scheduler_settings(unique: str, **overrides: Any) -> SchedulerSettings:
    values: dict[str, Any] = {
        "standard_schedules": False,
        "name_prefix": f"t{unique}",
        "history_consumer": f"history-{unique}",
        "sweep_interval_s": 0.5,
        "metrics_interval_s": 3600,
        "listen_ping_s": 1.0,
        **overrides,
    }
    return SchedulerSettings(**values)


@asynccontextmanager
async def running_scheduler(
    settings: Settings,
    unique: str,
    *,
    instance: str = "a",
    clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> AsyncIterator[Scheduler]:
    """A scheduler with its own NATS connection and pool, firing only schedules named ``t<unique>...``."""
    assert settings.nats_url is not None
    assert settings.database_url is not None
    nc = await connect_nats(settings, settings.nats_url, name=f"scheduler-{instance}")
    pool = await create_pool(settings.database_url, max_size=4)
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    service = Scheduler(
        nc=nc,
        pool=pool,
        dsn=settings.database_url,
        settings=scheduler_settings(unique, instance=instance, **overrides),
        duplicate_window_s=settings.duplicate_window_s,
        **kwargs,
    )
    try:
        async with service:
            yield service
    finally:
        await pool.close()
        await nc.drain()


async def published(js: JetStreamContext, subject: str, *, wait_s: float = 0.3) -> list[Msg]:
    """Every message on the TRACKS stream matching ``subject``, oldest first."""
    sub = await js.pull_subscribe(
        subject,
        stream="TRACKS",
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=10
        ),
    )
    found: list[Msg] = []
    try:
        while True:
            try:
                found.extend(await sub.fetch(256, timeout=wait_s))
            except (TimeoutError, NatsTimeoutError):
                return found
    finally:
        await sub.unsubscribe()


def body(msg: Msg) -> dict[str, Any]:
    value = json.loads(msg.data)
    assert isinstance(value, dict)
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


async def cleanup_schedules(pool: asyncpg.Pool, unique: str) -> None:
    await pool.execute(
        "DELETE FROM job_executions WHERE schedule_id IN (SELECT id FROM job_schedules WHERE name LIKE $1)",
        f"%{unique}%",
    )
    await pool.execute("DELETE FROM job_schedules WHERE name LIKE $1", f"%{unique}%")
