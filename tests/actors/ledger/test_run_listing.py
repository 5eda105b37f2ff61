"""Finding runs: ``list_runs`` filters, orders newest first and pages by keyset; ``show_run``;
and the listing's plans read an index in order instead of sorting the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from actors.ledger.listing import list_runs, show_run

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def seed(pool: asyncpg.Pool, wf: str, statuses: list[str]) -> list[str]:
    """One run per status, run i started i minutes after T0; their correlation IDs."""
    cids = [f"{wf}-{i:02d}" for i in range(len(statuses))]
    await pool.executemany(
        """INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, finished_at, error)
           VALUES ($1, $2, $3, $4::timestamptz,
                   CASE WHEN $3 = 'running' THEN NULL ELSE $4::timestamptz + interval '3 seconds' END,
                   CASE WHEN $3 = 'failed' THEN 'b: boom' END)""",
        [
            (cid, wf, s, T0 + timedelta(minutes=i))
            for i, (cid, s) in enumerate(zip(cids, statuses, strict=True))
        ],
    )
    return cids


async def test_filters_newest_first(pool: asyncpg.Pool, unique: str) -> None:
    wf = f"list-{unique}"
    cids = await seed(pool, wf, ["completed", "failed", "running", "completed", "cancelled", "running"])
    everything = await list_runs(pool, workflow=wf)
    assert [r.correlation_id for r in everything] == cids[::-1]
    running = await list_runs(pool, workflow=wf, status="running")
    assert [r.correlation_id for r in running] == [cids[5], cids[2]]
    assert [r.correlation_id for r in await list_runs(pool, workflow=wf, status="CANCELLED")] == [cids[4]]
    recent = await list_runs(pool, workflow=wf, since=T0 + timedelta(minutes=3))
    assert [r.correlation_id for r in recent] == [cids[5], cids[4], cids[3]]
    assert [r.correlation_id for r in await list_runs(pool, workflow=wf, limit=2)] == [cids[5], cids[4]]
    assert await list_runs(pool, workflow=f"{wf}-none") == []


async def test_keyset_pages_cover_every_run_once(pool: asyncpg.Pool, unique: str) -> None:
    wf = f"page-{unique}"
    cids = await seed(pool, wf, ["completed"] * 7)
    seen: list[str] = []
    page = await list_runs(pool, workflow=wf, limit=3)
    while page:
        seen += [r.correlation_id for r in page]
        last = page[-1]
        page = await list_runs(pool, workflow=wf, limit=3, before=(last.started_at, last.correlation_id))
    assert seen == cids[::-1]


async def test_wire_form_is_camel_case_and_utc(pool: asyncpg.Pool, unique: str) -> None:
    wf = f"wire-{unique}"
    [cid] = await seed(pool, wf, ["failed"])
    [run] = await list_runs(pool, workflow=wf)
    assert run.as_wire() == {
        "correlationId": cid,
        "workflow": wf,
        "status": "failed",
        "startedAt": "2026-11-01T12:00:00.000Z",
        "finishedAt": "2026-11-01T12:00:03.000Z",
        "durationS": 3.0,
        "userId": None,
        "error": "b: boom",
    }


async def test_limit_is_bounded(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="limit"):
        await list_runs(pool, limit=0)


async def test_show_run_with_phases_and_steps(pool: asyncpg.Pool, unique: str) -> None:
    wf, cid = f"show-{unique}", f"show-{unique}-1"
    definition = {
        "tracks": {"a": [], "b": ["a"], "c": ["b"]},
        "phases": [
            {"name": "intake", "tracks": ["a", "b"], "manual": False},
            {"name": "review", "tracks": ["c"], "manual": True},
        ],
    }
    await pool.execute(
        "INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, definition) "
        "VALUES ($1, $2, 'running', $3, $4::text::jsonb)",
        cid,
        wf,
        T0,
        json.dumps(definition),
    )
    await pool.executemany(
        "INSERT INTO track_steps (correlation_id, track_id, status, attempts, started_at, finished_at, "
        "error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (cid, "a", "completed", 1, T0, T0 + timedelta(seconds=1), None),
            (cid, "b", "failed", 3, T0 + timedelta(seconds=2), T0 + timedelta(seconds=9), "Boom: no"),
        ],
    )
    detail = await show_run(pool, cid)
    assert detail is not None
    wire = detail.as_wire()
    assert wire["status"] == "running" and wire["currentPhase"] == "intake" and wire["currentStep"] == "b"
    assert wire["phases"] == [
        {"name": "intake", "manual": False, "tracks": ["a", "b"], "completed": False},
        {"name": "review", "manual": True, "tracks": ["c"], "completed": False},
    ]
    assert wire["steps"][1] == {
        "track": "b",
        "status": "failed",
        "attempts": 3,
        "startedAt": "2026-11-01T12:00:02.000Z",
        "finishedAt": "2026-11-01T12:00:09.000Z",
        "error": "Boom: no",
    }
    assert await show_run(pool, f"{cid}-unknown") is None


async def test_show_run_without_a_definition(pool: asyncpg.Pool, unique: str) -> None:
    """A run refused before it began (``fail_unopened``) is stored without its definition."""
    wf = f"bare-{unique}"
    [cid] = await seed(pool, wf, ["failed"])
    detail = await show_run(pool, cid)
    assert detail is not None and detail.progress is None and detail.phases == [] and detail.steps == []
    assert detail.as_wire()["completedPhases"] == []


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "workflow_runs_started"),
        ({"status": "failed"}, "workflow_runs_status_started"),
        ({"workflow": "w-3"}, "workflow_runs_workflow_started"),
        ({"since": T0 - timedelta(hours=1)}, "workflow_runs_started"),
    ],
)
async def test_listing_reads_an_index_in_order(fresh_db: str, filters: dict[str, object], index: str) -> None:
    """No sort and no scan of the table: the LIMIT stops an index scan (EXPLAIN of the real query)."""
    from foundation.db import create_pool, migrate

    admin = await asyncpg.connect(fresh_db)
    try:
        await migrate(admin)
        await admin.execute(
            """INSERT INTO workflow_runs (correlation_id, workflow, status, started_at)
               SELECT 'r' || g, 'w-' || (g % 20),
                      (ARRAY['completed', 'failed', 'running', 'cancelled'])[1 + g % 4],
                      $1::timestamptz - make_interval(secs => g)
               FROM generate_series(1, 20000) g""",
            T0,
        )
        await admin.execute("ANALYZE workflow_runs")
    finally:
        await admin.close()
    pool = await create_pool(fresh_db, max_size=1)
    plans: list[str] = []

    class Explaining:
        async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
            plans.extend(r[0] for r in await pool.fetch(f"EXPLAIN {sql}", *args))
            return await pool.fetch(sql, *args)

    try:
        found = await list_runs(Explaining(), limit=50, **filters)  # type: ignore[arg-type]
    finally:
        await pool.close()
    assert len(found) == 50
    plan = "\n".join(plans)
    assert index in plan, plan
    assert "Sort" not in plan and "Seq Scan" not in plan, plan
