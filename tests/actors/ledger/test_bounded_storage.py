"""Bounded storage (migration 0014): a definition stored once across runs, a payload stored once
yet shown at every ``TRACKS_RECORD_PAYLOADS`` level, and rows written before still read as they were."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from actors import Runtime, TrackContext, TracksClient, Workflow
from actors.ledger.execution_chain import execution_chain
from actors.ledger.listing import show_run
from actors.ledger.plan import StepPlan
from actors.ledger.progress import progress
from foundation.db import create_pool, migrate
from foundation.db.migrate import migrations_dir
from foundation.settings import Settings
from tests.actors.ledger.test_record_payloads import two_steps


def test_only_steps_a_fan_in_links_to_keep_their_traceparent() -> None:
    wf = Workflow("linked")

    @wf.track("a")
    async def a(ctx: TrackContext, job: dict[str, int]) -> dict[str, int]:
        return job

    @wf.track("b", after=["a"])
    async def b(ctx: TrackContext, job: dict[str, int]) -> dict[str, int]:
        return job

    @wf.track("c", after=["a"])
    async def c(ctx: TrackContext, job: dict[str, int]) -> dict[str, int]:
        return job

    @wf.track("d", after=["b", "c"])
    async def d(ctx: TrackContext, job: dict[str, int]) -> dict[str, int]:
        return job

    assert {t.name: StepPlan.of(t).linked for t in wf} == {"a": False, "b": True, "c": True, "d": False}


async def test_definition_stored_once(settings: Settings, pool: asyncpg.Pool, nc: NATS, unique: str) -> None:
    wf = two_steps(f"{unique}def")
    cids = [f"def-{unique}-{n}" for n in range(3)]
    async with Runtime(list(wf), settings=settings):
        stored_at_start = await pool.fetchval(
            "SELECT count(*) FROM workflow_definitions WHERE definition ->> 'name' = $1", wf.name
        )
        assert stored_at_start == 1, "the runtime stores its definitions before any claim"
        for cid in cids:
            assert await TracksClient(nc).run(wf, {"n": 1}, timeout=30, correlation_id=cid) == {"n": 20}
    runs = await pool.fetch(
        "SELECT definition, definition_id FROM workflow_runs WHERE correlation_id = ANY ($1)", cids
    )
    assert len(runs) == 3 and all(r["definition"] is None for r in runs), "not stored with each run"
    assert len({r["definition_id"] for r in runs}) == 1
    stored = await pool.fetchval(
        "SELECT definition FROM workflow_definitions WHERE id = $1", runs[0]["definition_id"]
    )
    assert stored["tracks"] == {f"{unique}def-a": [], f"{unique}def-b": [f"{unique}def-a"]}
    traces = await pool.fetch(
        "SELECT s.trace_context AS step, w.trace_context AS run FROM track_steps s "
        "JOIN workflow_runs w USING (correlation_id) WHERE s.correlation_id = ANY ($1)",
        cids,
    )
    assert len(traces) == 6 and all(r["step"] is None and r["run"] for r in traces), "no fan-in links to them"
    state = await progress(pool, cids[0])
    assert state.status == "completed" and state.steps == {
        f"{unique}def-a": "completed",
        f"{unique}def-b": "completed",
    }
    detail = await show_run(pool, cids[1])
    assert detail is not None and detail.phases[0]["tracks"] == [f"{unique}def-a", f"{unique}def-b"]


@pytest.mark.parametrize("mode", ["full", "once", "none"])
async def test_chain_shows_payloads(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, unique: str, mode: str
) -> None:
    """``once`` keeps an output only in ``track_steps``; the chain shows it on the ``completed``
    row as ``full`` does. The ``started`` rows' usual subject is left out and restored."""
    wf = two_steps(f"{unique}ch{mode}")
    a, b = f"{unique}ch{mode}-a", f"{unique}ch{mode}-b"
    cid = f"chain-{unique}-{mode}"
    async with Runtime(list(wf), settings=settings.model_copy(update={"record_payloads": mode})):
        assert await TracksClient(nc).run(wf, {"n": 1}, timeout=30, correlation_id=cid) == {"n": 20}
    stored = await pool.fetch(
        "SELECT track_id, event_type, details::text AS d FROM processing_logs WHERE correlation_id = $1", cid
    )
    for row in stored:
        assert "subject" not in json.loads(row["d"] or "{}"), "the usual subject is not stored"
    chain = {(e.track, e.event_type): e.details for e in await execution_chain(pool, cid)}
    a_out = {"n": 2, "blob": "x" * 200}
    assert chain[a, "completed"] == {"payload": a_out if mode != "none" else None}
    assert chain[b, "completed"] == {"payload": {"n": 20} if mode != "none" else None}
    assert chain[a, "started"] == {
        "subject": f"tracks.{a}.run.{cid}",
        "source": None,
        **({"payload": {"n": 1}} if mode != "none" else {}),
    }
    assert chain[b, "started"] == {
        "subject": f"tracks.{a}.completed.{cid}",
        "source": a,
        **({"payload": a_out} if mode == "full" else {}),
    }


async def _written_before(
    db: asyncpg.Pool | asyncpg.Connection, cid: str, t0: datetime, logs: list[tuple[str, str, Any]]
) -> None:
    """Step ``a`` completed, with a trace ID, and ``logs`` (track, event, details) as written before 0014."""
    await db.execute(
        "INSERT INTO track_steps (correlation_id, track_id, status, started_at, finished_at, output, "
        "trace_id) VALUES ($1, 'a', 'completed', $2, $2, '{\"n\": 2}', 'abc')",
        cid,
        t0,
    )
    await db.executemany(
        "INSERT INTO processing_logs (correlation_id, track_id, event_type, details, occurred_at) "
        "VALUES ($1, $2, $3, $4::text::jsonb, $5)",
        [(cid, t, e, json.dumps(d), t0 + timedelta(seconds=i)) for i, (t, e, d) in enumerate(logs)],
    )


async def test_rows_written_before_read_as_they_were(pool: asyncpg.Pool, unique: str) -> None:
    """A run with its own definition and log rows holding subject and payload (as written before
    0014): status, ``runs show`` and the chain read them unchanged."""
    cid, t0 = f"old-{unique}", datetime(2026, 11, 1, tzinfo=UTC)
    definition = {
        "tracks": {"a": [], "b": ["a"]},
        "phases": [{"name": "main", "tracks": ["a", "b"], "manual": False}],
    }
    await pool.execute(
        "INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, input, definition) "
        "VALUES ($1, 'old', 'running', $2, '{\"n\": 1}', $3::text::jsonb)",
        cid,
        t0,
        json.dumps(definition),
    )
    old = [
        ("a", "started", {"subject": f"tracks.a.run.{cid}", "source": None, "payload": {"n": 1}}),
        ("a", "completed", {"payload": {"n": 2, "kept": "in the row"}}),
        ("b", "started", {"subject": "tracks.a.completed.elsewhere", "source": "a"}),
    ]
    await _written_before(pool, cid, t0, old)
    assert [(e.track, e.event_type, e.details) for e in await execution_chain(pool, cid)] == old
    state = await progress(pool, cid)
    assert state.current_step == "b" and state.steps == {"a": "completed"}
    detail = await show_run(pool, cid)
    assert detail is not None and [p["name"] for p in detail.phases] == ["main"]


async def test_migration_keeps_rows_written_before(fresh_db: str, tmp_path: Path) -> None:
    """A database migrated up to 0013 holding a run as the runtime wrote it then (its definition
    inline, a step's trace ID, log rows with subject and output), then migrated: the run's status,
    ``runs show`` and chain read as before, and its chain is still found by correlation ID."""
    for path in sorted(migrations_dir().glob("*.sql")):
        if int(path.name[:4]) <= 13:
            shutil.copy(path, tmp_path / path.name)
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, tmp_path)
        cid, t0 = "before-0014", datetime(2026, 11, 1, tzinfo=UTC)
        await conn.execute(
            "INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, finished_at, input, "
            "result, definition) VALUES ($1, 'old', 'completed', $2, $2, '{\"n\": 1}', '{\"n\": 2}', $3)",
            cid,
            t0,
            json.dumps({"tracks": {"a": []}, "phases": [{"name": "main", "tracks": ["a"], "manual": False}]}),
        )
        old = [
            ("a", "started", {"subject": f"tracks.a.run.{cid}", "source": None, "payload": {"n": 1}}),
            ("a", "completed", {"payload": {"n": 2}}),
        ]
        await _written_before(conn, cid, t0, old)
        assert 14 in [m.version for m in await migrate(conn)]
    finally:
        await conn.close()
    pool = await create_pool(fresh_db, max_size=2)
    try:
        assert [(e.track, e.event_type, e.details) for e in await execution_chain(pool, cid)] == old
        state = await progress(pool, cid)
        assert state.status == "completed" and state.steps == {"a": "completed"}
        detail = await show_run(pool, cid)
        assert detail is not None and detail.phases[0]["tracks"] == ["a"]
    finally:
        await pool.close()
