"""Retention: delete finished coordination data older than a cutoff.

What goes: ``track_steps`` rows of finished steps (completed, failed, timed out, cancelled) finished
before the cutoff; ``processing_logs`` rows older than the cutoff of runs with no unfinished
step (a run still in progress keeps its whole history, so its chain stays explainable);
``workflow_runs`` rows finished before the cutoff (when that table exists); the scheduler's
``job_executions`` rows (ticks) that ended before the cutoff (running and queued ones stay); and the
offloaded payloads of runs left with no step at all. Payloads of a run that still has an
unfinished step stay: that step may be waiting for one of them as its input.

Deletes run in bounded batches, each its own statement, so a large backlog never holds
long locks against the actors writing new rows. ``processing_logs`` is walked in key order (the
next ``batch`` ids after the last one seen), and each batch asks ``track_steps`` only about its
own runs (by primary key): a batch costs the same on a small or a large table, where an
anti-join against all of ``track_steps`` re-read that table once per batch. The walk stops at
the first batch with nothing older than the cutoff (ids grow with time).

``budget`` paces the purge for running beside live work: each batch is followed by a pause long
enough that statements take at most that share of the purge's wall time (0.05: a batch of 50 ms,
then 950 ms of rest). On a small machine an unpaced purge of a large backlog takes a core and the
disk from the actors (README "Retention": the growth bench measured its cost).
"""

from __future__ import annotations

import time
from asyncio import sleep
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg

from actors.transport.payloads import PayloadStore

__all__ = ["FINISHED", "purge"]

_T = TypeVar("_T")

FINISHED = ("completed", "failed", "timed_out", "cancelled")

# Along track_steps_finished from where the last batch ended, deleting by row address (a TID
# scan): a row changed meanwhile (a step resumed) has moved and is left alone.
_STEPS_SQL = """
WITH batch AS MATERIALIZED (
    SELECT ctid AS row, finished_at FROM track_steps
    WHERE finished_at >= $4 AND finished_at < $1 AND status = ANY($2::text[])
    ORDER BY finished_at LIMIT $3
), gone AS (
    DELETE FROM track_steps WHERE ctid = ANY (ARRAY(SELECT row FROM batch))
    RETURNING correlation_id
)
SELECT correlation_id, (SELECT max(finished_at) FROM batch) AS last FROM gone
"""

_LOGS_SQL = """
WITH batch AS MATERIALIZED (
    SELECT id, correlation_id, occurred_at < $1 AS old FROM processing_logs
    WHERE id > $4 ORDER BY id LIMIT $3
), busy AS MATERIALIZED (
    -- runs of this batch with an unfinished step keep their history: found by primary key
    SELECT DISTINCT s.correlation_id FROM track_steps s
    WHERE s.correlation_id = ANY (ARRAY(SELECT DISTINCT correlation_id FROM batch WHERE old))
      AND s.status <> ALL($2::text[])
), gone AS (
    DELETE FROM processing_logs
    WHERE id = ANY (ARRAY(SELECT id FROM batch
                          WHERE old AND correlation_id NOT IN (SELECT correlation_id FROM busy)))
    RETURNING 1
)
SELECT max(id) AS last, count(*) FILTER (WHERE old) AS old, (SELECT count(*) FROM gone) AS deleted
FROM batch
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
    budget: float = 1.0,
) -> dict[str, int]:
    """Delete what finished more than ``older_than_s`` ago; counts per table (and ``payloads``).

    ``budget`` (0 < budget <= 1): the share of wall time the batches may take; 1 never pauses.
    """
    if older_than_s < 0 or batch <= 0:
        raise ValueError("older_than_s must be >= 0 and batch > 0")
    if not 0 < budget <= 1:
        raise ValueError(f"budget must be in (0, 1], got {budget}")

    async def paced(statement: Awaitable[_T]) -> _T:
        began = time.monotonic()
        result = await statement
        if budget < 1:
            await sleep((time.monotonic() - began) * (1 - budget) / budget)
        return result

    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    cids: set[str] = set()
    counts = {"track_steps": 0, "processing_logs": 0, "workflow_runs": 0, "job_executions": 0, "payloads": 0}
    since = datetime.min.replace(tzinfo=UTC)
    while rows := await paced(pool.fetch(_STEPS_SQL, cutoff, list(FINISHED), batch, since)):
        counts["track_steps"] += len(rows)
        cids.update(r["correlation_id"] for r in rows)
        since = rows[0]["last"]
    last = 0
    while True:
        walked = await paced(pool.fetchrow(_LOGS_SQL, cutoff, list(FINISHED), batch, last))
        assert walked is not None
        counts["processing_logs"] += walked["deleted"]
        if walked["last"] is None or walked["old"] == 0:  # the end, or past the cutoff
            break
        last = walked["last"]
    if await pool.fetchval("SELECT to_regclass('workflow_runs') IS NOT NULL"):
        while rows := await paced(pool.fetch(_RUNS_SQL, cutoff, batch)):
            counts["workflow_runs"] += len(rows)
            cids.update(r["correlation_id"] for r in rows)
    if await pool.fetchval("SELECT to_regclass('job_executions') IS NOT NULL"):
        while (n := _affected(await paced(pool.execute(_EXECUTIONS_SQL, cutoff, batch)))) > 0:
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
