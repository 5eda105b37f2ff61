"""Retention on a fresh database: old finished data goes, new or unfinished data stays."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import asyncpg
import pytest
from click.testing import CliRunner
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors.ledger.retention import purge
from actors.transport.payloads import PayloadMissing, PayloadStore
from foundation.db import create_pool, migrate
from tests.conftest import Servers
from tracks.cli.main import cli

DAY = 86400.0


@pytest.fixture
async def fresh(servers: Servers) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A migrated database of its own: a purge is global and must not see other tests' rows."""
    name = f"retention_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(servers.database_url)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = servers.database_url.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(dsn, max_size=2)
    try:
        yield dsn, pool
    finally:
        await pool.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def store(js: JetStreamContext, unique: str) -> AsyncIterator[PayloadStore]:
    s = PayloadStore(js, bucket=f"TEST_RETENTION_{unique}", threshold_bytes=64)
    yield s
    with suppress(NotFoundError):
        await js.delete_object_store(s.bucket)


async def step(pool: asyncpg.Pool, cid: str, track: str, status: str, age_days: float) -> None:
    """A step that started ``age_days`` ago and, unless unfinished, finished then too, with two log rows."""
    finished = status in ("completed", "failed", "timed_out")
    await pool.execute(
        """INSERT INTO track_steps (correlation_id, track_id, status, started_at, finished_at)
           VALUES ($1, $2, $3, now() - make_interval(secs => $4),
                   CASE WHEN $5 THEN now() - make_interval(secs => $4) END)""",
        cid,
        track,
        status,
        age_days * DAY,
        finished,
    )
    await pool.execute(
        """INSERT INTO processing_logs (correlation_id, track_id, event_type, occurred_at)
           SELECT $1, $2, e, now() - make_interval(secs => $3)
           FROM unnest(ARRAY['started', 'completed']) e""",
        cid,
        track,
        age_days * DAY,
    )


async def run(pool: asyncpg.Pool, cid: str, status: str, age_days: float) -> None:
    await pool.execute(
        """INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, finished_at)
           VALUES ($1, 'wf', $2, now() - make_interval(secs => $3),
                   CASE WHEN $2 <> 'running' THEN now() - make_interval(secs => $3) END)""",
        cid,
        status,
        age_days * DAY,
    )


async def remaining(pool: asyncpg.Pool, table: str) -> set[str]:
    return {r[0] for r in await pool.fetch(f"SELECT DISTINCT correlation_id FROM {table}")}


async def test_old_finished_data_goes_new_and_unfinished_stay(
    fresh: tuple[str, asyncpg.Pool], store: PayloadStore
) -> None:
    _, pool = fresh
    await step(pool, "old-done", "a", "completed", 40)
    await step(pool, "old-done", "b", "failed", 39)
    await step(pool, "old-timeout", "a", "timed_out", 35)
    await step(pool, "new-done", "a", "completed", 1)
    await step(pool, "old-but-running", "a", "completed", 40)  # its upstream, long done
    await step(pool, "old-but-running", "b", "running", 40)
    await step(pool, "old-but-gated", "a", "gated", 40)
    await run(pool, "old-done", "completed", 39)
    await run(pool, "old-but-running", "running", 40)
    await run(pool, "new-done", "completed", 1)
    refs = {
        cid: await store.offload(cid, "a", {"blob": "x" * 100})
        for cid in ("old-done", "old-but-running", "new-done")
    }

    counts = await purge(pool, older_than_s=30 * DAY, payloads=store, batch=2)

    assert counts == {
        "track_steps": 4,
        "processing_logs": 6,
        "workflow_runs": 1,
        "job_executions": 0,
        "payloads": 1,
    }
    assert await remaining(pool, "track_steps") == {"new-done", "old-but-running", "old-but-gated"}
    steps = {(r[0], r[1]) for r in await pool.fetch("SELECT correlation_id, track_id FROM track_steps")}
    assert ("old-but-running", "a") not in steps  # finished long ago, though its run goes on
    assert await remaining(pool, "processing_logs") == {"new-done", "old-but-running", "old-but-gated"}
    kept = "SELECT count(*) FROM processing_logs WHERE correlation_id = 'old-but-running'"
    assert await pool.fetchval(kept) == 4
    assert await remaining(pool, "workflow_runs") == {"old-but-running", "new-done"}
    # the running run may still need its upstream's payload; the fully purged one does not
    assert await store.resolve(refs["old-but-running"]) == {"blob": "x" * 100}
    assert await store.resolve(refs["new-done"]) == {"blob": "x" * 100}
    with pytest.raises(PayloadMissing):
        await store.resolve(refs["old-done"])

    again = await purge(pool, older_than_s=30 * DAY, payloads=store)
    assert set(again.values()) == {0}


async def test_without_workflow_runs_table_and_without_payloads(fresh: tuple[str, asyncpg.Pool]) -> None:
    _, pool = fresh
    await pool.execute("DROP TABLE IF EXISTS workflow_runs")
    await step(pool, "old", "a", "completed", 10)
    counts = await purge(pool, older_than_s=DAY, payloads=None)
    assert counts == {
        "track_steps": 1,
        "processing_logs": 2,
        "workflow_runs": 0,
        "job_executions": 0,
        "payloads": 0,
    }


async def test_old_finished_job_executions_go(fresh: tuple[str, asyncpg.Pool]) -> None:
    """A schedule's history is covered too: ended ticks go, running and queued ones stay."""
    _, pool = fresh
    sid = await pool.fetchval(
        "INSERT INTO job_schedules (name, cron_expression, job_type, target) "
        "VALUES ('nightly', '0 1 * * *', 'j', 't') RETURNING id"
    )
    for i, (status, age) in enumerate(
        [("completed", 40), ("failed", 40), ("skipped", 40), ("cancelled", 40), ("timed_out", 40),
         ("running", 40), ("queued", 40), ("completed", 1)]
    ):  # fmt: skip
        await pool.execute(
            """INSERT INTO job_executions (schedule_id, correlation_id, status, scheduled_for, started_at,
                                           completed_at)
               VALUES ($1, $2, $3, now() - make_interval(secs => $4), now() - make_interval(secs => $4),
                       CASE WHEN $3 NOT IN ('running', 'queued')
                            THEN now() - make_interval(secs => $4) END)""",
            sid, f"tick-{i}", status, age * DAY - i,
        )  # fmt: skip
    counts = await purge(pool, older_than_s=30 * DAY, payloads=None, batch=2)
    assert counts["job_executions"] == 5
    left = await pool.fetch("SELECT status FROM job_executions ORDER BY status")
    assert [r[0] for r in left] == ["completed", "queued", "running"]


def test_cli_prints_counts(fresh: tuple[str, asyncpg.Pool], servers: Servers) -> None:
    dsn, _ = fresh
    env = {**os.environ, "TRACKS_NATS_URL": servers.nats_url, "TRACKS_DATABASE_URL": dsn}
    result = CliRunner().invoke(cli, ["retention", "run", "--older-than-days", "7"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "purged what finished more than 7 day(s) ago:",
        "  track_steps      0",
        "  processing_logs  0",
        "  workflow_runs    0",
        "  job_executions   0",
        "  payloads         0",
    ]
    result = CliRunner().invoke(cli, ["retention", "run", "--older-than-days", "-1"], env=env)
    assert result.exit_code == 1 and "--older-than-days must be >= 0, got -1" in result.output
    result = CliRunner().invoke(cli, ["retention", "run", "--budget", "0"], env=env)
    assert result.exit_code == 1 and "--budget must be in (0, 1], got 0" in result.output
    result = CliRunner().invoke(cli, ["retention", "run", "--budget", "0.5"], env=env)
    assert result.exit_code == 0 and "  track_steps      0" in result.output


async def test_budget_rests_after_each_batch(
    fresh: tuple[str, asyncpg.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A budget under 1 follows every batch with a pause (3x the batch's time at 0.25); 1 never pauses."""
    import actors.ledger.retention as retention

    _, pool = fresh
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(retention, "sleep", sleep)
    for i in range(3):
        await step(pool, f"old-{i}", "a", "completed", 40)
    counts = await purge(pool, older_than_s=30 * DAY, payloads=None, batch=1, budget=0.25)
    assert (counts["track_steps"], counts["processing_logs"]) == (3, 6)
    assert len(pauses) >= 3 + 6 and all(p > 0 for p in pauses)  # one per statement, batches of 1

    pauses.clear()
    await step(pool, "old-3", "a", "completed", 40)
    counts = await purge(pool, older_than_s=30 * DAY, payloads=None, batch=1)
    assert (counts["track_steps"], pauses) == (1, [])
    for budget in (0.0, 1.5):
        with pytest.raises(ValueError, match="budget must be in"):
            await purge(pool, older_than_s=30 * DAY, payloads=None, budget=budget)
