"""The scheduler's /metrics (tick decisions per schedule), /healthz and /readyz on its HTTP port."""

from __future__ import annotations

import json
from urllib.error import URLError

import asyncpg
import pytest
from nats.js import JetStreamContext

from foundation.connections import connect_nats
from foundation.db import create_pool
from foundation.settings import Settings
from scheduler.schedules import NewSchedule, OverlapPolicy, ScheduleStore
from scheduler.service import Scheduler
from tests.support.http import http_get, samples
from tests.support.scheduling import cleanup_schedules, scheduler_settings
from tests.support.waiting import eventually
from tracks.embedded._process import free_port


async def test_scheduler_serves_tick_counts_and_readiness(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """Every-second ticks are counted as ``published`` for their schedule; the server answers
    /healthz and /readyz (200) while the scheduler runs and is gone once it stopped."""
    assert settings.nats_url is not None and settings.database_url is not None
    name = f"t{unique}-metrics"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    nc = await connect_nats(settings, settings.nats_url, name="scheduler-metrics")
    sched_pool = await create_pool(settings.database_url, max_size=4)
    service = Scheduler(
        nc=nc,
        pool=sched_pool,
        dsn=settings.database_url,
        settings=scheduler_settings(unique),
        http_port=port,
    )
    try:
        async with service:
            status, body = await http_get(f"{base}/readyz")
            assert (status, json.loads(body)) == (200, {"status": "ready"})
            assert (await http_get(f"{base}/healthz"))[0] == 200
            await ScheduleStore(pool).add(
                NewSchedule(
                    name=name,
                    cron_expression="* * * * * *",
                    target=f"m{unique}",
                    overlap_policy=OverlapPolicy.ALLOW,
                )
            )

            async def ticked() -> bool:
                page = samples((await http_get(f"{base}/metrics"))[1])
                key = ("tracks_schedule_ticks_total", (("result", "published"), ("schedule", name)))
                return page.get(key, 0) >= 2

            await eventually(ticked, timeout=20, what="two published ticks counted")
            await ScheduleStore(pool).set_enabled(name, False)
    finally:
        await sched_pool.close()
        await nc.drain()
        await cleanup_schedules(pool, unique)
    with pytest.raises(URLError):  # nothing listens any more
        await http_get(f"{base}/healthz", timeout=2)
