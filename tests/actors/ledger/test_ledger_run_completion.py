"""A workflow's only leaf completes its run in the ledger's outcome statement (no second check)."""

from __future__ import annotations

import asyncpg

from actors.ledger.store import Claim, Ledger, LogRow, StepFinish, Verdict


async def _open_run(ledger: Ledger, cid: str, wf: str, track: str, seq: int) -> int:
    claimed = await ledger.claim(Claim(cid, track, seq, workflow=wf, root=True, run_timeout_s=60))
    assert claimed.verdict is Verdict.RUN
    return claimed.attempt


async def test_the_only_leaf_completes_the_run_with_its_output(pool: asyncpg.Pool, unique: str) -> None:
    ledger = Ledger(pool)
    ledger.start()
    try:
        cid, wf, leaf = f"{unique}-run", f"wf-{unique}", f"{unique}-leaf"
        attempt = await _open_run(ledger, cid, wf, leaf, 1)
        written = await ledger.finish(
            StepFinish("completed", LogRow(cid, leaf, "completed"), {"total": 7}, attempt, ends_run=True)
        )
        assert written.applied and written.completed_run == wf
        run = await pool.fetchrow("SELECT status, result FROM workflow_runs WHERE correlation_id = $1", cid)
        assert (run["status"], run["result"]) == ("completed", {"total": 7})
        again = await ledger.finish(  # the run is no longer running: nothing to announce twice
            StepFinish("completed", LogRow(cid, leaf, "completed"), {"total": 7}, None, ends_run=True)
        )
        assert again.applied and again.completed_run is None
    finally:
        await ledger.close()


async def test_a_fenced_off_or_closed_leaf_completes_nothing(pool: asyncpg.Pool, unique: str) -> None:
    ledger = Ledger(pool)
    ledger.start()
    try:
        wf, leaf = f"wf-{unique}", f"{unique}-leaf"
        late, timed_out = f"{unique}-late", f"{unique}-timed-out"
        attempt = await _open_run(ledger, late, wf, leaf, 1)
        fenced = await ledger.finish(
            StepFinish("completed", LogRow(late, leaf, "completed"), {}, attempt + 1, ends_run=True)
        )
        assert not fenced.applied and fenced.completed_run is None
        attempt = await _open_run(ledger, timed_out, wf, leaf, 2)
        await pool.execute(
            "UPDATE workflow_runs SET status = 'timed_out' WHERE correlation_id = $1", timed_out
        )
        closed = await ledger.finish(
            StepFinish("completed", LogRow(timed_out, leaf, "completed"), {}, attempt, ends_run=True)
        )
        assert closed.applied and closed.completed_run is None
        rows = await pool.fetch(
            "SELECT correlation_id, status FROM workflow_runs WHERE correlation_id = ANY($1)",
            [late, timed_out],
        )
        statuses = {r["correlation_id"]: r["status"] for r in rows}
        assert statuses == {late: "running", timed_out: "timed_out"}
    finally:
        await ledger.close()
