"""A lost reply after a committed ledger batch: the group commit sends the same batch again, and the
ledger's statements are idempotent under that replay (fault injection: the statement commits, then
the caller gets a connection error instead of the reply)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from actors.ledger.store import Claim, Ledger, LogRow, StepFinish, Verdict


class _LosesReplies:
    """A pool whose next ``lose`` statements commit and then fail as if the connection dropped."""

    def __init__(self, pool: asyncpg.Pool, lose: int) -> None:
        self._pool = pool
        self.lose = lose
        self.lost = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_LosingConnection]:
        async with self._pool.acquire() as conn:
            yield _LosingConnection(conn, self)

    async def fetchrow(self, *args: Any) -> Any:
        return await self._pool.fetchrow(*args)

    async def fetch(self, *args: Any) -> Any:
        return await self._pool.fetch(*args)

    async def fetchval(self, *args: Any) -> Any:
        return await self._pool.fetchval(*args)


class _LosingConnection:
    def __init__(self, conn: Any, owner: _LosesReplies) -> None:
        self._conn = conn
        self._owner = owner

    async def fetch(self, sql: str, *args: Any) -> Sequence[asyncpg.Record]:
        rows: Sequence[asyncpg.Record] = await self._conn.fetch(sql, *args)  # committed (autocommit)
        if self._owner.lose > 0:
            self._owner.lose -= 1
            self._owner.lost += 1
            raise ConnectionResetError("injected: the reply was lost after the commit")
        return rows

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)


async def test_a_replayed_claim_does_not_raise_attempts_nor_log_twice(
    pool: asyncpg.Pool, unique: str
) -> None:
    flaky = _LosesReplies(pool, lose=1)
    ledger = Ledger(flaky)  # type: ignore[arg-type]
    ledger.start()
    try:
        result = await ledger.claim(Claim(f"{unique}-c", f"{unique}-t", 1, f"wf-{unique}", root=True))
    finally:
        await ledger.close()
    assert flaky.lost == 1
    assert (result.verdict, result.attempt, result.tries) == (Verdict.RUN, 1, 1)
    step = await pool.fetchrow(
        "SELECT attempts, tries FROM track_steps WHERE correlation_id = $1", f"{unique}-c"
    )
    assert (step["attempts"], step["tries"]) == (1, 1)
    started = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE correlation_id = $1 AND event_type = 'started'",
        f"{unique}-c",
    )
    assert started == 1


async def test_a_replayed_completion_is_written_once_and_its_run_still_announced(
    pool: asyncpg.Pool, unique: str
) -> None:
    """The only leaf's completion commits (and completes the run) but the reply is lost: the replay
    writes no second ``completed`` row and still says which run it completed, so it is announced."""
    cid, track, wf = f"{unique}-c", f"{unique}-t", f"wf-{unique}"
    good = Ledger(pool)
    good.start()
    claimed = await good.claim(Claim(cid, track, 1, wf, root=True))
    await good.close()

    flaky = _LosesReplies(pool, lose=1)
    ledger = Ledger(flaky)  # type: ignore[arg-type]
    ledger.start()
    try:
        written = await ledger.finish(
            StepFinish(
                "completed",
                LogRow(cid, track, "completed", attempt=claimed.attempt),
                output={"ok": True},
                fence=claimed.attempt,
                ends_run=True,
            )
        )
        plain = await ledger.record_durably(LogRow(cid, track, "note"))
    finally:
        await ledger.close()
    assert flaky.lost == 1
    assert written.applied and written.completed_run == wf
    assert plain.applied
    rows = await pool.fetch(
        "SELECT event_type FROM processing_logs WHERE correlation_id = $1 ORDER BY id", cid
    )
    assert [r["event_type"] for r in rows] == ["started", "completed", "note"]
    run = await pool.fetchrow("SELECT status, result FROM workflow_runs WHERE correlation_id = $1", cid)
    assert run["status"] == "completed"


async def test_a_replayed_fenced_outcome_stays_superseded(pool: asyncpg.Pool, unique: str) -> None:
    cid, track = f"{unique}-c", f"{unique}-t"
    good = Ledger(pool)
    good.start()
    first = await good.claim(Claim(cid, track, 1))
    await good.claim(Claim(cid, track, 1))  # taken over: attempt 2
    await good.close()
    flaky = _LosesReplies(pool, lose=1)
    ledger = Ledger(flaky)  # type: ignore[arg-type]
    ledger.start()
    try:
        late = await ledger.finish(
            StepFinish("completed", LogRow(cid, track, "completed"), output={}, fence=first.attempt)
        )
    finally:
        await ledger.close()
    assert not late.applied
    rows = await pool.fetch(
        "SELECT event_type FROM processing_logs WHERE correlation_id = $1 ORDER BY id", cid
    )
    assert [r["event_type"] for r in rows] == ["started", "started", "superseded"]
