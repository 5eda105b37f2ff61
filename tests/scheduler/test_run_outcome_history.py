"""A tick that starts a workflow ends as the run ends, not when the run's first track completes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import asyncpg
import pytest
from nats.js import JetStreamContext

from foundation.settings import Settings
from scheduler.schedules import NewSchedule, ScheduleStore
from scheduler.service import Scheduler
from subjects import EventType, RunOutcome, SubjectKind, encode_event, names
from tests.support.scheduling import cleanup_schedules, published, running_scheduler
from tests.support.waiting import eventually

EVERY_SECOND = "* * * * * *"


@pytest.fixture
async def store(pool: asyncpg.Pool, unique: str) -> AsyncIterator[ScheduleStore]:
    yield ScheduleStore(pool)
    await cleanup_schedules(pool, unique)


async def _row(pool: asyncpg.Pool, cid: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM job_executions WHERE correlation_id = $1", cid)
    assert row is not None
    return row


async def _step(js: JetStreamContext, track: str, cid: str, workflow: str | None) -> None:
    body = encode_event(
        track, EventType.COMPLETED, {"n": 1}, correlation_id=cid, source_track=track, workflow=workflow
    )
    await js.publish(names.event(track, SubjectKind.COMPLETED, cid), body)


async def _outcome(
    js: JetStreamContext, wf: str, outcome: RunOutcome, cid: str, payload: dict[str, object]
) -> None:
    kind = EventType.COMPLETED if outcome is RunOutcome.COMPLETED else EventType.FAILED
    body = encode_event(
        wf, kind, {"outcome": str(outcome), **payload}, correlation_id=cid, source_track=wf, workflow=wf
    )
    await js.publish(names.workflow_event(wf, outcome, cid), body)


async def test_execution_follows_the_run_outcome(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target, wf = f"t{unique}-wf", f"scan{unique}", f"wf{unique}"
    async with running_scheduler(settings, unique) as service:
        await store.add(NewSchedule(name=name, cron_expression=EVERY_SECOND, target=target))
        expected: dict[RunOutcome, tuple[dict[str, object], str | None]] = {
            RunOutcome.FAILED: ({"track": "book", "error": "KeyError: vendor"}, "book: KeyError: vendor"),
            RunOutcome.CANCELLED: ({"reason": "wrong month"}, "the workflow run was cancelled: wrong month"),
            RunOutcome.TIMED_OUT: ({"deadline": "2026-01-01T00:00:00Z"}, "the workflow run timed out"),
            RunOutcome.COMPLETED: ({"result": {"files": 2}}, None),
        }
        for i, (outcome, (payload, error)) in enumerate(expected.items()):
            await eventually(partial(_more_than, js, target, i), timeout=6, what=f"tick {i + 1}")
            cid = (await published(js, f"tracks.{target}.run.*"))[i].subject.rsplit(".", 1)[1]
            steps = service.history.steps
            await _step(js, target, cid, wf)  # the run's first track completed: not the run's end
            await eventually(partial(_steps_above, service, steps), timeout=5, what="step seen")
            assert (await _row(pool, cid))["status"] == "running"
            await _outcome(js, wf, outcome, cid, payload)
            await eventually(partial(_status, pool, cid, outcome.value), timeout=5, what=str(outcome))
            row = await _row(pool, cid)
            assert row["completed_at"] is not None
            assert (row["error_message"] or "").startswith(error or "") and (error is None) == (
                row["error_message"] is None
            )
            assert row["execution_metadata"]["workflow"] == wf
        await store.set_enabled(name, False)


async def test_a_plain_track_target_still_ends_with_its_event(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, store: ScheduleStore, unique: str
) -> None:
    name, target = f"t{unique}-plain", f"plain{unique}"
    async with running_scheduler(settings, unique):
        await store.add(NewSchedule(name=name, cron_expression=EVERY_SECOND, target=target))
        await eventually(lambda: _more_than(js, target, 0), timeout=6, what="first tick")
        cid = (await published(js, f"tracks.{target}.run.*"))[0].subject.rsplit(".", 1)[1]
        await _step(js, target, cid, None)
        await eventually(lambda: _status(pool, cid, "completed"), timeout=5, what="completed")
        await store.set_enabled(name, False)


async def _more_than(js: JetStreamContext, target: str, n: int) -> bool:
    return len(await published(js, f"tracks.{target}.run.*", wait_s=0.1)) > n


async def _steps_above(service: Scheduler, n: int) -> bool:
    return service.history.steps > n


async def _status(pool: asyncpg.Pool, cid: str, status: str) -> bool:
    return bool(
        await pool.fetchval("SELECT status FROM job_executions WHERE correlation_id = $1", cid) == status
    )
