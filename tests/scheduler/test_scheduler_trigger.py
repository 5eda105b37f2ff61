"""The APScheduler adapter and the routing seam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from nats.js import JetStreamContext

from foundation.connections import connect_nats
from foundation.db import create_pool
from foundation.settings import Settings
from scheduler import CronExpression, CrontabTrigger, NewSchedule, Schedule, ScheduleStore
from scheduler.service import Scheduler
from tests.support.scheduling import cleanup_schedules, scheduler_settings
from tests.support.waiting import eventually


def test_trigger_uses_crontab_semantics_not_apschedulers() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    trigger = CrontabTrigger(CronExpression.parse("0 2 * * 0"), berlin)
    now = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday
    first = trigger.get_next_fire_time(None, now)
    assert first == datetime(2026, 6, 7, 2, 0, tzinfo=berlin)  # Sunday, not Monday
    assert first.weekday() == 6
    assert trigger.get_next_fire_time(first, first) == first + timedelta(days=7)


def test_a_tick_due_exactly_now_still_fires() -> None:
    trigger = CrontabTrigger(CronExpression.parse("* * * * * *"), UTC)
    now = datetime(2026, 6, 3, 12, 0, 5, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == now
    assert trigger.get_next_fire_time(now, now) == now + timedelta(seconds=1)


@pytest.fixture
async def store(pool: asyncpg.Pool, unique: str) -> AsyncIterator[ScheduleStore]:
    yield ScheduleStore(pool)
    await cleanup_schedules(pool, unique)


async def test_a_tick_that_cannot_be_published_is_recorded_as_failed(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    """The route is the seam for other targets; here it points where no stream listens."""

    def nowhere(schedule: Schedule, cid: str) -> str:
        return f"nostream{unique}.{schedule.target}.{cid}"

    assert settings.nats_url is not None
    assert settings.database_url is not None
    nc = await connect_nats(settings, settings.nats_url, name="scheduler-route")
    own_pool = await create_pool(settings.database_url, max_size=2)
    name = f"t{unique}-nowhere"
    try:
        service = Scheduler(
            nc=nc,
            pool=own_pool,
            dsn=settings.database_url,
            settings=scheduler_settings(unique),
            route=nowhere,
        )
        async with service:
            await store.add(NewSchedule(name=name, cron_expression="* * * * * *", target="x"))

            async def failed() -> bool:
                return bool(
                    await pool.fetchval(
                        """SELECT count(*) FROM job_executions e JOIN job_schedules s ON s.id = e.schedule_id
                           WHERE s.name = $1 AND e.status = 'failed'
                             AND e.error_message LIKE 'tick not published after % attempts:%'""",
                        name,
                    )
                )

            await eventually(failed, timeout=40, what="failed tick")  # retried ~20 s first
            assert service.stats.publish_failures >= 1
            assert service.stats.published == 0
            await store.set_enabled(name, False)
    finally:
        await own_pool.close()
        await nc.drain()
