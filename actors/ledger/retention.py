"""Retention: delete finished coordination data older than a cutoff.

What goes: ``track_steps`` rows of finished steps (completed, failed, timed out, cancelled) finished
before the cutoff; ``processing_logs`` rows older than the cutoff of runs with no unfinished
step (a run still in progress keeps its whole history, so its chain stays explainable);
``workflow_runs`` rows finished before the cutoff (when that table exists); the scheduler's
``job_executions`` rows (ticks) that ended before the cutoff (running and queued ones stay); and the
offloaded payloads of runs left with no step at all. Payloads of a run that still has an
unfinished step stay: that step may be waiting for one of them as its input.

Deletes run in bounded batches, each its own statement, so a large backlog never holds
long locks against the actors writing new rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from actors.transport.payloads import PayloadStore

__all__ = ["FINISHED", "purge"]

FINISHED = ("completed", "failed", "timed_out", "cancelled")

_STEPS_SQL = """
DELETE FROM track_steps WHERE (correlation_id, track_id) IN (
    SELECT correlation_id, track_id FROM track_steps
    WHERE status = ANY($2::text[]) AND finished_at < $1 LIMIT $3)
RETURNING correlation_id
"""

_LOGS_SQL = """
DELETE FROM processing_logs WHERE id IN (
    SELECT p.id FROM processing_logs p
    WHERE p.occurred_at < $1
      AND NOT EXISTS (SELECT 1 FROM track_steps s
                      WHERE s.correlation_id = p.correlation_id AND s.status <> ALL($2::text[]))
    LIMIT $3)
"""

_RUNS_SQL = """
DELETE FROM workflow_runs WHERE correlation_id IN (
    SELECT correlation_id FROM workflow_runs
    WHERE status <> 'running' AND finished_at < $1 LIMIT $2)
RETURNING correlation_id
"""

_EXECUTIONS_SQL = """
DELETE FROM job_executions WHERE id IN (
    SELECT id FROM job_executions
    WHERE status NOT IN ('running', 'queued') AND coalesce(completed_at, started_at) < $1 LIMIT $2)
"""


async def purge(
    pool: asyncpg.Pool,
    *,
    older_than_s: float,
    payloads: PayloadStore | None,
    batch: int = 5000,
) -> dict[str, int]:
    """Delete what finished more than ``older_than_s`` ago; counts per table (and ``payloads``)."""
    if older_than_s < 0 or batch <= 0:
        raise ValueError("older_than_s must be >= 0 and batch > 0")
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    cids: set[str] = set()
    counts = {"track_steps": 0, "processing_logs": 0, "workflow_runs": 0, "job_executions": 0, "payloads": 0}
    while rows := await pool.fetch(_STEPS_SQL, cutoff, list(FINISHED), batch):
        counts["track_steps"] += len(rows)
        cids.update(r["correlation_id"] for r in rows)
    while (n := _affected(await pool.execute(_LOGS_SQL, cutoff, list(FINISHED), batch))) > 0:
        counts["processing_logs"] += n
    if await pool.fetchval("SELECT to_regclass('workflow_runs') IS NOT NULL"):
        while rows := await pool.fetch(_RUNS_SQL, cutoff, batch):
            counts["workflow_runs"] += len(rows)
            cids.update(r["correlation_id"] for r in rows)
    if await pool.fetchval("SELECT to_regclass('job_executions') IS NOT NULL"):
        while (n := _affected(await pool.execute(_EXECUTIONS_SQL, cutoff, batch))) > 0:
            counts["job_executions"] += n
    if payloads is not None and cids:
        gone = await _without_steps(pool, cids)
        counts["payloads"] = await payloads.delete_many(gone)
    return counts


async def _without_steps(pool: asyncpg.Pool, cids: set[str]) -> list[str]:
    """The runs that have no step left: their payloads can no longer be anyone's input."""
    rows = await pool.fetch(
        "SELECT c FROM unnest($1::text[]) AS c WHERE NOT EXISTS "
        "(SELECT 1 FROM track_steps s WHERE s.correlation_id = c)",
        sorted(cids),
    )
    return [r["c"] for r in rows]


def _affected(status: str) -> int:
    """``'DELETE 42'`` → 42."""
    return int(status.rsplit(" ", 1)[-1])
