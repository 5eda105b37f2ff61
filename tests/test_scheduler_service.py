"""The scheduler process against real NATS and PostgreSQL: replicas, live changes, history."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from nats.js import JetStreamContext

from scheduler.priority import Priority
from scheduler.schedules import NewSchedule, OverlapPolicy, ScheduleStore
from subjects import EventType, TrackEvent
from subjects.headers import MSG_ID, PRIORITY
from tests.support.scheduling import body, cleanup_schedules, published, running_scheduler
from tracks.settings import Settings

EVERY_SECOND = "* * * * * *"


@pytest.fixture
async def store(pool: asyncpg.Pool, unique: str) -> AsyncIterator[ScheduleStore]:
    yield ScheduleStore(pool)
    await cleanup_schedules(pool, unique)


async def _rows(pool: asyncpg.Pool, name: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT e.* FROM job_executions e JOIN job_schedules s ON s.id = e.schedule_id
           WHERE s.name = $1 ORDER BY e.scheduled_for""",
        name,
    )


async def test_two_replicas_publish_each_tick_exactly_once(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-replicas", f"rep{unique}"
    async with (
        running_scheduler(settings, unique, instance="a") as a,
        running_scheduler(settings, unique, instance="b") as b,
    ):
        await store.add(
            NewSchedule(
                name=name,
                cron_expression=EVERY_SECOND,
                target=target,
                overlap_policy=OverlapPolicy.ALLOW,
                priority=Priority.HIGH,
                payload={"k": 1},
            )
        )
        await asyncio.sleep(5.2)
        await store.set_enabled(name, False)
        await asyncio.sleep(0.5)
    msgs = await published(js, f"tracks.{target}.run.*")
    rows = await _rows(pool, name)
    print(f"\nreplicas: {len(msgs)} ticks; a published {a.stats.published} (dup {a.stats.duplicates}), "
          f"b published {b.stats.published} (dup {b.stats.duplicates})")  # fmt: skip
    assert len(msgs) >= 4
    msg_ids = [m.headers[MSG_ID] for m in msgs if m.headers]
    assert len(msg_ids) == len(set(msg_ids)) == len(msgs)
    assert a.stats.published + b.stats.published == len(msgs)
    # One row per tick, consecutive seconds, none missing, each the cid of exactly one message.
    assert [r["status"] for r in rows] == ["running"] * len(rows)
    ticks = [r["scheduled_for"] for r in rows]
    assert all(later - earlier == timedelta(seconds=1) for earlier, later in itertools.pairwise(ticks))
    assert {r["correlation_id"] for r in rows} == {m.subject.rsplit(".", 1)[1] for m in msgs}
    first = msgs[0]
    assert first.headers is not None
    assert first.headers[PRIORITY] == "high"
    assert first.headers[MSG_ID].startswith(f"schedule:{name}:")
    event = TrackEvent.model_validate(body(first))
    assert event.event_type is EventType.DATA_READY
    assert event.track_id == target
    assert event.payload == {"k": 1}
    extra = event.metadata.model_extra or {}
    assert event.metadata.source_track == "scheduler"
    assert extra["priority"] == "high"
    assert extra["schedule"] == name
    assert first.headers[MSG_ID] == f"schedule:{name}:{extra['scheduledFor']}"
