"""Missed ticks after downtime: the pure plan, and a scheduler restarted 2 minutes after its last tick."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from nats.js import JetStreamContext

from foundation.settings import Settings
from scheduler.cron import CronExpression
from scheduler.misfire import plan_catch_up, plan_due
from scheduler.schedules import NewSchedule, ScheduleStore
from scheduler.settings import MisfirePolicy
from subjects.headers import MSG_ID
from tests.support.scheduling import cleanup_schedules, published, running_scheduler

EVERY_MINUTE = CronExpression.parse("* * * * *")
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _plan(policy: MisfirePolicy, grace_s: float, *, last: datetime, now: datetime, cap: int = 100):  # type: ignore[no-untyped-def]
    return plan_catch_up(EVERY_MINUTE, UTC, last=last, now=now, policy=policy, grace_s=grace_s, cap=cap)


def test_coalesce_fires_the_latest_missed_tick_within_grace_once() -> None:
    plan = _plan(MisfirePolicy.COALESCE, 150, last=T0, now=T0 + timedelta(minutes=5, seconds=10))
    assert plan.fire == T0 + timedelta(minutes=5)
    reasons = {s.scheduled_for.minute: s.reason for s in plan.skips}
    assert reasons == {1: "misfire", 2: "misfire", 3: "coalesced", 4: "coalesced"}


def test_everything_older_than_grace_is_skipped() -> None:
    plan = _plan(MisfirePolicy.COALESCE, 5, last=T0, now=T0 + timedelta(minutes=3, seconds=10))
    assert plan.fire is None
    assert [s.reason for s in plan.skips] == ["misfire"] * 3


def test_skip_policy_fires_nothing() -> None:
    plan = _plan(MisfirePolicy.SKIP, 600, last=T0, now=T0 + timedelta(minutes=2, seconds=1))
    assert plan.fire is None
    assert [s.reason for s in plan.skips] == ["misfire_policy"] * 2


def test_nothing_missed_means_an_empty_plan() -> None:
    plan = _plan(MisfirePolicy.COALESCE, 60, last=T0, now=T0 + timedelta(seconds=59))
    assert plan.fire is None
    assert plan.skips == ()


def test_long_downtime_records_at_most_cap_rows_and_counts_the_rest() -> None:
    plan = _plan(MisfirePolicy.COALESCE, 30, last=T0, now=T0 + timedelta(days=1), cap=10)
    old = [s for s in plan.skips if s.reason == "misfire"]
    assert len(old) == 10
    assert [s.scheduled_for.minute for s in old] == list(range(1, 11))  # the oldest get a row
    assert old[-1].skipped_until == T0 + timedelta(days=1) - timedelta(seconds=30)
    assert all(s.skipped_until is None for s in old[:-1])
    assert plan.fire == T0 + timedelta(days=1)


def test_due_ticks_found_together_coalesce_to_the_latest() -> None:
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    plan = plan_due(times, T0 + timedelta(seconds=2.1), grace_s=10)
    assert plan.fire == times[-1]
    assert [s.reason for s in plan.skips] == ["coalesced", "coalesced"]
    assert plan_due(times[:1], T0 + timedelta(seconds=20), grace_s=10).fire is None


@pytest.fixture
async def store(pool: asyncpg.Pool, unique: str) -> AsyncIterator[ScheduleStore]:
    yield ScheduleStore(pool)
    await cleanup_schedules(pool, unique)


@pytest.mark.parametrize(
    ("policy", "grace_s", "fired", "reasons"),
    [
        (MisfirePolicy.COALESCE, 30, True, ["misfire"]),
        (MisfirePolicy.COALESCE, 300, True, ["coalesced"]),
        (MisfirePolicy.SKIP, 300, False, ["misfire_policy", "misfire_policy"]),
    ],
)
async def test_restart_two_minutes_after_the_last_tick(
    settings: Settings,
    js: JetStreamContext,
    pool: asyncpg.Pool,
    store: ScheduleStore,
    unique: str,
    policy: MisfirePolicy,
    grace_s: float,
    fired: bool,
    reasons: list[str],
) -> None:
    """The last tick in the DB is 2 minutes old; the injected clock puts "now" 10 s past a minute."""
    name, target = f"t{unique}-misfire", f"mis{unique}"
    schedule = await store.add(
        NewSchedule(name=name, cron_expression="* * * * *", target=target, enabled=False)
    )
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    last = minute - timedelta(minutes=2)
    await pool.execute(
        "UPDATE job_schedules SET enabled = true, updated_at = $2 WHERE id = $1", schedule.id, last
    )
    await pool.execute(
        """INSERT INTO job_executions (schedule_id, correlation_id, status, scheduled_for, completed_at)
           VALUES ($1, $2, 'completed', $3, $3)""",
        schedule.id, f"last-{unique}", last,
    )  # fmt: skip
    async with running_scheduler(
        settings,
        unique,
        clock=lambda: minute + timedelta(seconds=10),
        misfire_policy=policy,
        misfire_grace_s=grace_s,
    ):
        pass
    rows = await pool.fetch(
        """SELECT * FROM job_executions WHERE schedule_id = $1 AND scheduled_for > $2 AND scheduled_for <= $3
           ORDER BY scheduled_for""",
        schedule.id,
        last,
        minute,
    )  # fmt: skip  (a real tick at a minute boundary during the test is no concern of this test)
    by_time = {r["scheduled_for"]: r for r in rows}
    ids = {f"schedule:{name}:{t.strftime('%Y-%m-%dT%H:%M:%SZ')}" for t in by_time}
    assert set(by_time) == {minute - timedelta(minutes=1), minute}
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert [r["execution_metadata"]["reason"] for r in skipped] == reasons
    msgs = [
        m for m in await published(js, f"tracks.{target}.run.*") if m.headers and m.headers[MSG_ID] in ids
    ]
    if fired:
        assert by_time[minute]["status"] == "running"
        assert len(msgs) == 1
        assert msgs[0].headers is not None
        assert msgs[0].headers[MSG_ID] == f"schedule:{name}:{minute.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        assert msgs[0].subject.endswith(by_time[minute]["correlation_id"])
    else:
        assert msgs == []
