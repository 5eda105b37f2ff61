"""The scheduler process against real NATS and PostgreSQL: replicas, live changes, history."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest
from nats.js import JetStreamContext

from foundation.settings import Settings
from foundation.telemetry import configure_tracing
from scheduler.schedules import NewSchedule, OverlapPolicy, ScheduleStore
from subjects import EventMetadata, EventType, SubjectKind, TrackEvent, names
from subjects.headers import MSG_ID, PRIORITY
from subjects.priority import Priority
from tests.support.scheduling import body, cleanup_schedules, published, running_scheduler
from tests.support.waiting import eventually

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
    configure_tracing("tests")  # so ticks carry a traceparent (a no-op when already installed)
    names, target = [f"t{unique}-replicas-{i}" for i in range(4)], f"rep{unique}"
    name = names[0]
    async with (
        running_scheduler(settings, unique, instance="a") as a,
        running_scheduler(settings, unique, instance="b") as b,
    ):
        for each in names:
            await store.add(
                NewSchedule(
                    name=each,
                    cron_expression=EVERY_SECOND,
                    target=target,
                    overlap_policy=OverlapPolicy.ALLOW,
                    priority=Priority.HIGH,
                    payload={"k": 1},
                )
            )
        await asyncio.sleep(5.2)
        for each in names:
            await store.set_enabled(each, False)
        await asyncio.sleep(0.5)
    msgs = await published(js, f"tracks.{target}.urgent.*")  # high priority: the target's urgent lane
    print(f"\nreplicas: {len(msgs)} ticks; a published {a.stats.published} (dup {a.stats.duplicates}), "
          f"b published {b.stats.published} (dup {b.stats.duplicates})")  # fmt: skip
    assert len(msgs) >= 16
    msg_ids = [m.headers[MSG_ID] for m in msgs if m.headers]
    assert len(msg_ids) == len(set(msg_ids)) == len(msgs)
    assert a.stats.published + b.stats.published == len(msgs)
    assert a.stats.published + a.stats.duplicates > 0, "replica a never raced for a tick"
    assert b.stats.published + b.stats.duplicates > 0, "replica b never raced for a tick"
    # Per schedule: one row per tick, consecutive seconds, none missing; each row the cid of one message.
    cids: set[str] = set()
    for each in names:
        rows = await _rows(pool, each)
        assert [r["status"] for r in rows] == ["running"] * len(rows)
        ticks = [r["scheduled_for"] for r in rows]
        assert len(ticks) >= 4
        assert all(later - earlier == timedelta(seconds=1) for earlier, later in itertools.pairwise(ticks))
        cids |= {r["correlation_id"] for r in rows}
    assert cids == {m.subject.rsplit(".", 1)[1] for m in msgs}
    msgs = [m for m in msgs if m.headers and m.headers[MSG_ID].startswith(f"schedule:{name}:")]
    first = msgs[0]
    assert first.headers is not None
    trace_ids = {m.headers["traceparent"].split("-")[1] for m in msgs if m.headers}
    assert len(trace_ids) == len(msgs), "each tick starts its own trace"
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


async def _count(js: JetStreamContext, target: str) -> int:
    return len(await published(js, f"tracks.{target}.run.*", wait_s=0.1))


async def test_enable_and_disable_reach_a_running_scheduler(
    settings: Settings, js: JetStreamContext, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-live", f"live{unique}"
    async with running_scheduler(settings, unique) as service:
        started = time.monotonic()
        added = await store.add(
            NewSchedule(
                name=name, cron_expression=EVERY_SECOND, target=target, overlap_policy=OverlapPolicy.ALLOW
            )
        )
        load_s = await _seconds_until(lambda: added.id in service.loaded, started)
        await eventually(_ticks_above(js, target, 0), timeout=5, what="first tick")

        started = time.monotonic()
        await store.set_enabled(name, False)
        disable_s = await _seconds_until(lambda: added.id not in service.loaded, started)
        await asyncio.sleep(0.3)  # a tick claimed just before the disable may still land
        after_disable = await _count(js, target)
        await asyncio.sleep(2.5)
        assert await _count(js, target) == after_disable, "ticks published after disable"

        started = time.monotonic()
        await store.set_enabled(name, True)
        enable_s = await _seconds_until(lambda: added.id in service.loaded, started)
        await eventually(_ticks_above(js, target, after_disable), timeout=5, what="ticks resume")
    print(
        f"\npropagation (write to applied): add {load_s * 1000:.0f} ms, "
        f"disable {disable_s * 1000:.0f} ms, enable {enable_s * 1000:.0f} ms"
    )
    assert max(load_s, disable_s, enable_s) < 5.0


async def _seconds_until(condition: Callable[[], bool], started: float, limit_s: float = 5.0) -> float:
    """Seconds from ``started`` until ``condition`` holds, polled every millisecond."""
    while not condition():
        assert time.monotonic() - started < limit_s, "change not applied within the generous bound"
        await asyncio.sleep(0.001)
    return time.monotonic() - started


def _holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


def _ticks_above(js: JetStreamContext, target: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _count(js, target) > count

    return check


async def _finish(
    js: JetStreamContext, target: str, cid: str, kind: SubjectKind, payload: dict[str, object]
) -> None:
    event = TrackEvent(
        track_id=target,
        event_type=EventType.COMPLETED if kind is SubjectKind.COMPLETED else EventType.FAILED,
        payload=payload,
        metadata=EventMetadata(correlation_id=cid, source_track=target),
    )
    await js.publish(names.event(target, kind, cid), event.to_bytes())


async def _row(pool: asyncpg.Pool, cid: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM job_executions WHERE correlation_id = $1", cid)
    assert row is not None
    return row


async def test_history_follows_completed_and_failed_runs_and_overlap_skips(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-history", f"hist{unique}"
    async with running_scheduler(settings, unique):
        await store.add(NewSchedule(name=name, cron_expression=EVERY_SECOND, target=target))
        await eventually(_ticks_above(js, target, 0), timeout=5, what="first tick")
        await asyncio.sleep(2.2)  # the run is unfinished: the next ticks are skipped
        first = (await published(js, f"tracks.{target}.run.*"))[0]
        cid = first.subject.rsplit(".", 1)[1]
        assert await _count(js, target) == 1
        skipped = [r for r in await _rows(pool, name) if r["status"] == "skipped"]
        assert len(skipped) >= 1
        assert skipped[0]["execution_metadata"]["reason"] == "overlap: the previous run is unfinished"

        await _finish(js, target, cid, SubjectKind.COMPLETED, {"files": 3})
        await eventually(lambda: _status(pool, cid, "completed"), timeout=5, what="completed row")
        done = await _row(pool, cid)
        assert done["execution_metadata"]["result"] == {"files": 3}
        assert done["completed_at"] is not None

        await eventually(_ticks_above(js, target, 1), timeout=5, what="next run after completion")
        second = (await published(js, f"tracks.{target}.run.*"))[1]
        cid2 = second.subject.rsplit(".", 1)[1]
        await _finish(
            js, target, cid2, SubjectKind.FAILED, {"error": {"type": "OSError", "message": "disk full"}}
        )
        await eventually(lambda: _status(pool, cid2, "failed"), timeout=5, what="failed row")
        assert (await _row(pool, cid2))["error_message"] == "OSError: disk full"
        # An event of a run no schedule started matches nothing and is acked, not redelivered forever.
        await _finish(js, target, "not-a-scheduled-run", SubjectKind.COMPLETED, {})
        await store.set_enabled(name, False)


async def _status(pool: asyncpg.Pool, cid: str, status: str) -> bool:
    return await pool.fetchval("SELECT status FROM job_executions WHERE correlation_id = $1", cid) == status


async def test_queue_overlap_releases_one_waiting_tick(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-queue", f"queue{unique}"
    async with running_scheduler(settings, unique) as service:
        await store.add(
            NewSchedule(
                name=name, cron_expression=EVERY_SECOND, target=target, overlap_policy=OverlapPolicy.QUEUE
            )
        )
        await eventually(_ticks_above(js, target, 0), timeout=5, what="first tick")
        await asyncio.sleep(2.5)
        rows = await _rows(pool, name)
        statuses = [r["status"] for r in rows]
        assert statuses.count("running") == 1
        assert statuses.count("queued") == 1
        assert statuses.count("skipped") >= 1
        queued = next(r for r in rows if r["status"] == "queued")
        assert await _count(js, target) == 1

        running = next(r for r in rows if r["status"] == "running")
        await _finish(js, target, running["correlation_id"], SubjectKind.COMPLETED, {})
        await eventually(
            lambda: _status(pool, queued["correlation_id"], "running"), timeout=5, what="release"
        )
        msgs = await published(js, f"tracks.{target}.run.*")
        assert msgs[-1].subject == names.run(target, queued["correlation_id"])
        assert msgs[-1].headers is not None
        assert msgs[-1].headers[MSG_ID].endswith(queued["scheduled_for"].strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert service.stats.released == 1
        await store.set_enabled(name, False)


async def test_run_still_running_after_its_timeout_is_failed(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-timeout", f"slow{unique}"
    async with running_scheduler(settings, unique):
        await store.add(NewSchedule(name=name, cron_expression=EVERY_SECOND, target=target, timeout_s=1.0))
        await eventually(_ticks_above(js, target, 0), timeout=5, what="first tick")
        cid = (await published(js, f"tracks.{target}.run.*"))[0].subject.rsplit(".", 1)[1]
        await eventually(lambda: _status(pool, cid, "failed"), timeout=6, what="timeout")
        row = await _row(pool, cid)
        assert "timed out" in row["error_message"]
        assert "timeout 1 s" in row["error_message"]
        assert row["execution_metadata"]["timedOut"] is True
        # The timed-out run no longer blocks the schedule (overlap skip): a new run starts.
        await eventually(_ticks_above(js, target, 1), timeout=5, what="next run")
        await store.set_enabled(name, False)


async def test_listen_connection_heals_after_it_is_killed(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-heal", f"heal{unique}"
    async with running_scheduler(settings, unique) as service:
        added = await store.add(NewSchedule(name=name, cron_expression="0 0 1 1 *", target=target))
        await eventually(_holds(lambda: added.id in service.loaded), timeout=5, what="schedule loaded")
        assert service.listener.connections == 1
        await pool.execute("SELECT pg_terminate_backend($1)", service.listener.backend_pid)
        await eventually(_holds(lambda: service.listener.connections == 2), timeout=10, what="reconnect")
        await store.set_enabled(name, False)
        await eventually(
            _holds(lambda: added.id not in service.loaded), timeout=5, what="disable after reconnect"
        )


async def test_history_consumer_is_recreated_when_deleted(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-recreate", f"recr{unique}"
    async with running_scheduler(settings, unique):
        await js.delete_consumer("TRACKS", f"history-{unique}")

        async def exists() -> bool:
            try:
                await js.consumer_info("TRACKS", f"history-{unique}")
            except Exception:
                return False
            return True

        await eventually(exists, timeout=10, what="consumer recreated")
        await store.add(NewSchedule(name=name, cron_expression=EVERY_SECOND, target=target))
        await eventually(_ticks_above(js, target, 0), timeout=5, what="first tick")
        cid = (await published(js, f"tracks.{target}.run.*"))[0].subject.rsplit(".", 1)[1]
        await _finish(js, target, cid, SubjectKind.COMPLETED, {"ok": True})
        await eventually(lambda: _status(pool, cid, "completed"), timeout=5, what="completed row")
        await store.set_enabled(name, False)


async def test_a_schedule_broken_by_sql_is_left_out_and_the_rest_still_fire(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    await pool.execute(
        """INSERT INTO job_schedules (name, cron_expression, job_type, target)
           VALUES ($1, '* * 31 2 *', 'x', 'x'), ($2, '* * * * *', 'x', 'x')""",
        f"t{unique}-bad-cron", f"t{unique}-a-good-cron-bad-zone",
    )  # fmt: skip
    await pool.execute(
        "UPDATE job_schedules SET timezone = 'Mars/Olympus' WHERE name = $1",
        f"t{unique}-a-good-cron-bad-zone",
    )
    target = f"good{unique}"
    async with running_scheduler(settings, unique) as service:
        assert service.invalid == 2
        await store.add(NewSchedule(name=f"t{unique}-good", cron_expression=EVERY_SECOND, target=target))
        await eventually(_ticks_above(js, target, 0), timeout=5, what="the good schedule fires")
        await pool.execute(
            "UPDATE job_schedules SET cron_expression = 'nonsense' WHERE name = $1", f"t{unique}-good"
        )
        await eventually(_holds(lambda: service.invalid == 3), timeout=5, what="the edit is refused")
        assert service.loaded == {}
