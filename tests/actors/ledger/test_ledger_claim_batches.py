"""Several messages for one step in one claim batch: each gets its own verdict.

After an outage both upstream events of a fan-in step come back together (their acks were lost),
and the group commit puts them in one batch. When the step had completed on one of them, that one
must be answered "already done" (its output is re-announced); answering every message after the
first "duplicate" acked it without an announcement, and the run stopped there (found by the
chaos test: a run whose join completed and whose leaf never heard of it).
"""

from __future__ import annotations

import asyncio

import asyncpg

from actors.ledger.store import Claim, Ledger, LogRow, StepFinish, Verdict


async def _complete(ledger: Ledger, claim: Claim, output: dict[str, object]) -> None:
    granted = await ledger.claim(claim)
    assert granted.verdict is Verdict.RUN, granted
    written = await ledger.finish(
        StepFinish(
            "completed", LogRow(claim.correlation_id, claim.track, "completed"), output, granted.attempt
        )
    )
    assert written.applied


async def test_the_completing_message_redelivered_beside_the_other_upstream_is_already_done(
    pool: asyncpg.Pool, unique: str
) -> None:
    cid, wf = f"{unique}-run", f"wf-{unique}"
    ra, rb, join = f"{unique}-ra", f"{unique}-rb", f"{unique}-join"
    ledger = Ledger(pool)
    ledger.start()
    try:
        await _complete(ledger, Claim(cid, ra, 1, wf, root=True, run_timeout_s=60), {"a": 1})
        await _complete(ledger, Claim(cid, rb, 2, wf, root=True, run_timeout_s=60), {"b": 2})
        by_a = Claim(cid, join, 3, wf, fan_in=(ra, rb), source=ra)
        by_b = Claim(cid, join, 4, wf, fan_in=(ra, rb), source=rb)
        await _complete(ledger, by_a, {"joined": True})

        # both come back together, the other upstream's first: one batch of two claims of one step
        again_b = Claim(cid, join, 4, wf, fan_in=(ra, rb), source=rb)
        again_a = Claim(cid, join, 3, wf, fan_in=(ra, rb), source=ra)
        first, second = ledger.claim(again_b), ledger.claim(again_a)
        got_b, got_a = await asyncio.gather(first, second)
    finally:
        await ledger.close()
    assert by_b.stream_seq == again_b.stream_seq
    assert got_b.verdict is Verdict.COMPLETED_BEFORE
    assert got_a.verdict is Verdict.ALREADY_DONE
    assert got_a.output == {"joined": True}


async def test_two_upstreams_arriving_in_one_batch_run_the_step_once(pool: asyncpg.Pool, unique: str) -> None:
    cid, wf = f"{unique}-run", f"wf-{unique}"
    ra, rb, join = f"{unique}-ra", f"{unique}-rb", f"{unique}-join"
    ledger = Ledger(pool)
    ledger.start()
    try:
        await _complete(ledger, Claim(cid, ra, 1, wf, root=True, run_timeout_s=60), {"a": 1})
        await _complete(ledger, Claim(cid, rb, 2, wf, root=True, run_timeout_s=60), {"b": 2})
        got = await asyncio.gather(
            ledger.claim(Claim(cid, join, 3, wf, fan_in=(ra, rb), source=ra)),
            ledger.claim(Claim(cid, join, 4, wf, fan_in=(ra, rb), source=rb)),
        )
    finally:
        await ledger.close()
    assert [g.verdict for g in got] == [Verdict.RUN, Verdict.DUPLICATE]
    assert got[0].inputs == {ra: {"a": 1}, rb: {"b": 2}}
    started = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
        "AND event_type = 'started'",
        cid,
        join,
    )
    assert started == 1
