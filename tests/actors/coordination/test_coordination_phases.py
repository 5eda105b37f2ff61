"""Phases and manual gates: progress, proceed, and automatic progression."""

from __future__ import annotations

import pytest

from actors import Phase, Runtime, TrackContext, TracksClient, Workflow
from actors.ledger.progress import ProgressError, proceed, progress
from foundation.jetstream.publisher import EventPublisher
from tests.support.waiting import eventually


def reviewed(prefix: str, *, auto: bool = False) -> Workflow:
    a, b, c = f"{prefix}-scan", f"{prefix}-store", f"{prefix}-book"
    wf = Workflow(
        f"{prefix}-reviewed",
        phases=[Phase("intake", (a, b)), Phase("review", (c,), manual=True)],
        auto_proceed=auto,
    )

    @wf.track(a)
    async def scan(ctx: TrackContext, payload: dict) -> dict:
        return {"found": payload["count"]}

    @wf.track(b, after=[a])
    async def store(ctx: TrackContext, payload: dict) -> dict:
        return {"stored": payload["found"]}

    @wf.track(c, after=[b])
    async def book(ctx: TrackContext, payload: dict) -> dict:
        return {"booked": payload["stored"]}

    wf.validate()
    return wf


async def at_gate(pool, cid: str, track: str) -> None:
    async def gated() -> bool:
        status = await pool.fetchval(
            "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, track
        )
        return status == "gated"

    await eventually(gated, what=f"{track} to wait at its gate")


async def test_manual_gate_waits_then_proceeds(settings, pool, nc, js, unique):
    wf = reviewed(unique)
    book = f"{unique}-book"
    async with Runtime(list(wf), settings=settings):
        cid = await TracksClient(nc).start(wf, {"count": 3})

        await at_gate(pool, cid, book)
        state = await progress(pool, cid)
        assert state.as_wire() | {"steps": None} == {
            "correlationId": cid,
            "workflow": wf.name,
            "status": "running",
            "currentPhase": "review",
            "currentStep": book,
            "completedPhases": ["intake"],
            "canProceed": True,
            "requiresManualTrigger": True,
            "steps": None,
        }
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM processing_logs WHERE track_id = $1 AND event_type = 'started'", book
            )
            == 0
        )
        released = await proceed(pool, EventPublisher(js), cid)
        assert released.phase == "review"
        assert released.tracks == [book]

        async def done() -> bool:
            return (
                await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
                == "completed"
            )

        await eventually(done, what="the run to complete after proceed")
        after = await progress(pool, cid)
        assert after.completed_phases == ["intake", "review"]
        assert after.current_phase is None
        assert not after.requires_manual_trigger
        with pytest.raises(ProgressError, match="waits at no manual gate"):
            await proceed(pool, EventPublisher(js), cid)
    result = await pool.fetchval("SELECT result FROM workflow_runs WHERE correlation_id = $1", cid)
    assert result == {"booked": 3}


async def test_auto_proceed_runs_through_the_gate(settings, nc, unique):
    wf = reviewed(unique, auto=True)
    async with Runtime(list(wf), settings=settings):
        assert await TracksClient(nc).run(wf, {"count": 2}, timeout=30) == {"booked": 2}


async def test_unknown_run_is_a_clear_error(pool):
    with pytest.raises(ProgressError, match="no workflow run with correlation ID nope"):
        await progress(pool, "nope")


async def test_cancelling_a_run_at_its_gate_closes_the_gated_step(settings, pool, nc, js, unique):
    """Its gate never opens (proceed refuses a cancelled run), so the step ends with the run:
    a step left 'gated' kept the run and its history out of retention for ever."""
    from actors.ledger.cancel import cancel
    from actors.ledger.retention import purge

    wf = reviewed(unique)
    book = f"{unique}-book"
    async with Runtime(list(wf), settings=settings):
        cid = await TracksClient(nc).start(wf, {"count": 3})

        await at_gate(pool, cid, book)
        await cancel(pool, EventPublisher(js), cid, "wrong receipt")
    step = await pool.fetchrow(
        "SELECT status, finished_at FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, book
    )
    assert step["status"] == "cancelled" and step["finished_at"] is not None
    with pytest.raises(ProgressError, match="cancelled"):
        await proceed(pool, EventPublisher(js), cid)
    for sql in (  # two days old: only this run is past the cutoff below, no other test's rows
        "UPDATE track_steps SET finished_at = finished_at - interval '2 days' WHERE correlation_id = $1",
        "UPDATE processing_logs SET occurred_at = occurred_at - interval '2 days' WHERE correlation_id = $1",
        "UPDATE workflow_runs SET finished_at = finished_at - interval '2 days' WHERE correlation_id = $1",
    ):
        await pool.execute(sql, cid)
    await purge(pool, older_than_s=86_400, payloads=None)
    left = await pool.fetchval(
        """SELECT (SELECT count(*) FROM track_steps WHERE correlation_id = $1)
                + (SELECT count(*) FROM processing_logs WHERE correlation_id = $1)
                + (SELECT count(*) FROM workflow_runs WHERE correlation_id = $1)""",
        cid,
    )
    assert left == 0
