"""The ledger: ``track_steps`` (who may run a step) and ``processing_logs`` (what happened).

Three operations, each one SQL statement per batch of concurrent callers; a batch travels
as one JSON document expanded by ``jsonb_to_recordset`` (cheaper to build than many arrays):

- :meth:`Ledger.claim` — may this message run the step? One upsert decides for the whole
  batch: a new step, a retry of the same message, or a re-activation of a failed step
  runs (and its ``started`` row is written by the same statement); a completed step
  answers with its recorded output instead (it is never re-run); a step claimed by
  another message is a duplicate.
- :meth:`Ledger.record` — append a ``processing_logs`` row (not waited for).
- :meth:`Ledger.finish` — mark the step completed/failed with its output or error, plus a
  log row, and wait until it is durable. Writes are written in order, so once a finish is
  durable, every row recorded before it is too. The completion of a workflow's only leaf
  completes the run in the same statement (several leaves are checked by :mod:`actors.runs`
  once each is durable: one statement could not see another replica's leaf committing).

Their plans must not depend on the tables' statistics. Those taken just after a bulk delete say
"empty" while new rows refill the table's pages, and the planner then read whole tables once per
batch (a 400-row outcome batch took 1.3 s instead of 12 ms, measured). So every access to a ledger
table is bounded by the batch's own keys (``correlation_id = ANY (ARRAY(SELECT cid FROM req))``),
no index leads with ``status`` (migration 0006), and the runtime's connections join a batch to
the rows its keys found by hash, never by a loop per row (``create_pool(batch_joins=True)``).
``tests/test_ledger_plans.py`` checks the plans on such statistics.

Both statements lock ``track_steps`` rows in key order (claims insert in key order, outcomes lock
``FOR UPDATE`` in key order; a claim of a step whose outcome is being written waits for it), so
concurrent batches wait for each other instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg

from subjects.jsonwire import dumps

from .batcher import GroupCommit

__all__ = ["Claim", "ClaimResult", "Ledger", "LogRow", "StepFinish", "Verdict", "Written"]


class Verdict(StrEnum):
    RUN = "run"
    ALREADY_DONE = "already_done"
    """The message that completed the step, redelivered (its ack was lost, or the process died
    between recording and announcing): the recorded output is re-announced, the handler not run."""
    COMPLETED_BEFORE = "completed_before"
    """Another message for a step that completed (a duplicate trigger, a fan-in's other
    upstream arriving late): nothing to run or announce."""
    DUPLICATE = "duplicate"
    """Another message holds the step (a concurrent duplicate, or the other upstream of a fan-in)."""
    WAITING = "waiting"
    """A fan-in step whose other upstreams have not completed yet."""
    GATED = "gated"
    """The step's manual phase is not released: it waits for ``tracks proceed``."""
    CLOSED = "closed"
    """The run timed out: nothing more starts until it is resumed."""
    SUPERSEDED = "superseded"
    """This replica's outcome came too late: another took the step over (see ``StepFinish.fence``)."""


@dataclass(frozen=True)
class Claim:
    """A request to run a step; when granted, its ``started`` row is written by the same statement."""

    correlation_id: str
    track: str
    stream_seq: int
    workflow: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    started_details: dict[str, Any] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fan_in: tuple[str, ...] = ()
    root: bool = False
    gate: str | None = None
    run_timeout_s: float | None = None
    definition: dict[str, Any] | None = None
    """The workflow's definition, stored with the run a root step opens."""


@dataclass(frozen=True)
class ClaimResult:
    verdict: Verdict
    attempt: int = 0
    output: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    """For a fan-in step: each upstream's recorded output, by track."""


@dataclass(frozen=True)
class LogRow:
    correlation_id: str
    track: str
    event_type: str
    attempt: int = 1
    details: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    stream_seq: int | None = None
    duration_ms: float | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class StepFinish:
    """A step's outcome: updates ``track_steps`` and appends its log row (``row``) in one write.

    ``fence`` is the attempt number the claim granted: the outcome applies only while the
    step is still on that attempt. A replica that stalled past its ack wait, while another
    replica took the step over, finds its late outcome fenced off (recorded as
    ``superseded``) instead of completing the step a second time.
    """

    status: str  # completed | failed
    row: LogRow
    output: dict[str, Any] | None = None
    fence: int | None = None
    ends_run: bool = False
    """The workflow's only leaf completing: the same statement completes the run (if running)."""


@dataclass(frozen=True)
class Written:
    """What :meth:`Ledger.finish` did (a plain row record is always ``Written(True)``)."""

    applied: bool
    """``False``: fenced off, the step had moved on to a later attempt."""
    completed_run: str | None = None
    """The workflow whose run this outcome completed (``ends_run``), to be announced."""


_CLAIM_SQL = """
WITH req AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb)
        AS r(cid text, track text, seq bigint, workflow text, user_id text, trace_id text, details jsonb,
             at timestamptz, deps text[], root boolean, gate text, timeout_s float8, definition jsonb)
), new_runs AS (
    INSERT INTO workflow_runs
        (correlation_id, workflow, status, user_id, input, deadline, started_at, definition)
    SELECT DISTINCT ON (cid) cid, workflow, 'running', user_id, details -> 'payload',
           at + make_interval(secs => timeout_s), at, coalesce(definition, '{}'::jsonb)
    FROM req WHERE root AND workflow IS NOT NULL
    ORDER BY cid
    ON CONFLICT (correlation_id) DO NOTHING
), state AS (
    SELECT r.*, w.status AS run_status, coalesce(w.released_phases, '{}') AS released,
           (cardinality(r.deps) = 0 OR
            (SELECT count(*) FILTER (WHERE d.status = 'completed') FROM track_steps d
             WHERE d.correlation_id = r.cid AND d.track_id = ANY (r.deps)) = cardinality(r.deps)) AS deps_met
    FROM req r
    LEFT JOIN workflow_runs w
        ON w.correlation_id = r.cid AND w.correlation_id = ANY (ARRAY(SELECT cid FROM req))
), claimed AS (
    INSERT INTO track_steps AS s
        (correlation_id, track_id, workflow, user_id, status, attempts, activated_by, trace_id)
    SELECT cid, track, workflow, user_id,
           CASE WHEN gate IS NOT NULL AND NOT (gate = ANY (released)) THEN 'gated' ELSE 'running' END,
           CASE WHEN gate IS NOT NULL AND NOT (gate = ANY (released)) THEN 0 ELSE 1 END,
           seq, trace_id
    FROM state WHERE deps_met AND run_status IS DISTINCT FROM 'timed_out'
    ORDER BY cid, track  -- rows are locked in key order by every statement: batches never deadlock
    ON CONFLICT (correlation_id, track_id) DO UPDATE
        SET status = EXCLUDED.status,
            attempts = s.attempts + EXCLUDED.attempts,
            activated_by = EXCLUDED.activated_by, error = NULL, finished_at = NULL, updated_at = now()
        WHERE s.status IN ('failed', 'timed_out', 'gated')
           OR (s.status = 'running' AND s.activated_by = EXCLUDED.activated_by)
    RETURNING s.correlation_id, s.track_id, s.attempts, s.status
), reopened AS (
    UPDATE workflow_runs w SET status = 'running', finished_at = NULL, error = NULL, updated_at = now()
    FROM claimed c
    WHERE w.correlation_id = ANY (ARRAY(SELECT cid FROM req)) AND w.correlation_id = c.correlation_id
      AND c.status = 'running' AND w.status = 'failed'
), logged AS (
    INSERT INTO processing_logs (user_id, correlation_id, track_id, event_type, attempt, details, trace_id,
                                 stream_seq, occurred_at)
    SELECT r.user_id, r.cid, r.track, CASE c.status WHEN 'gated' THEN 'gated' ELSE 'started' END, c.attempts,
           r.details, r.trace_id, r.seq, r.at
    FROM claimed c JOIN req r ON r.cid = c.correlation_id AND r.track = c.track_id
)
SELECT s.cid, s.track, s.seq, c.attempts, c.status AS claimed, prior.status AS prior_status,
       prior.output::text AS prior_output, prior.activated_by, s.run_status, s.deps_met,
       CASE WHEN c.status = 'running' AND cardinality(s.deps) > 0 THEN
           (SELECT jsonb_object_agg(d.track_id, d.output) FROM track_steps d
            WHERE d.correlation_id = s.cid AND d.track_id = ANY (s.deps))::text END AS inputs
FROM state s
LEFT JOIN claimed c ON c.correlation_id = s.cid AND c.track_id = s.track
LEFT JOIN track_steps prior ON prior.correlation_id = s.cid AND prior.track_id = s.track
                             AND prior.correlation_id = ANY (ARRAY(SELECT cid FROM req))
"""

_WRITE_SQL = """
WITH fin AS (
    SELECT * FROM jsonb_to_recordset($2::text::jsonb)
        AS x(cid text, track text, status text, output jsonb, error text, at timestamptz, fence int,
             ends_run boolean)
), locked AS (
    -- Locked in key order, as the claim statement locks them (a claim of a completing step waits
    -- for its outcome): concurrent batches wait for each other instead of deadlocking.
    SELECT s.correlation_id, s.track_id
    FROM track_steps s JOIN fin x ON s.correlation_id = x.cid AND s.track_id = x.track
    WHERE s.correlation_id = ANY (ARRAY(SELECT cid FROM fin))
    ORDER BY s.correlation_id, s.track_id
    FOR UPDATE OF s
), steps AS (
    UPDATE track_steps s
    SET status = x.status, output = x.output, error = x.error, finished_at = x.at, updated_at = now()
    FROM fin x JOIN locked l ON l.correlation_id = x.cid AND l.track_id = x.track
    WHERE s.correlation_id = ANY (ARRAY(SELECT cid FROM fin))
      AND s.correlation_id = l.correlation_id AND s.track_id = l.track_id
      AND (x.fence IS NULL OR s.attempts = x.fence)
    RETURNING s.correlation_id, s.track_id, x.ends_run, x.output
), runs AS (
    UPDATE workflow_runs w
    SET status = 'completed', result = st.output, finished_at = now(), updated_at = now()
    FROM steps st
    WHERE w.correlation_id = ANY (ARRAY(SELECT correlation_id FROM steps WHERE ends_run))
      AND st.ends_run AND w.correlation_id = st.correlation_id AND w.status = 'running'
    RETURNING w.correlation_id, w.workflow
), logs AS (
    INSERT INTO processing_logs (user_id, correlation_id, track_id, event_type, attempt, details, error,
                                 error_type, trace_id, stream_seq, duration_ms, occurred_at)
    SELECT u, c, t,
           CASE WHEN f AND NOT EXISTS
                    (SELECT 1 FROM steps WHERE steps.correlation_id = c AND steps.track_id = t)
                THEN 'superseded' ELSE e END,
           a, d, er, et, tr, sq, du, oc
    FROM jsonb_to_recordset($1::text::jsonb)
        AS x(u text, c text, t text, e text, a int, d jsonb, er text, et text, tr text, sq bigint,
             du float8, oc timestamptz, f boolean)
)
SELECT correlation_id, track_id, NULL AS completed_run FROM steps
UNION ALL
SELECT correlation_id, NULL, workflow FROM runs
"""


def _verdict(row: asyncpg.Record) -> ClaimResult:
    if row["claimed"] == "running":
        inputs = json.loads(row["inputs"]) if row["inputs"] else None
        return ClaimResult(Verdict.RUN, attempt=row["attempts"], inputs=inputs)
    if row["claimed"] == "gated":
        return ClaimResult(Verdict.GATED)
    if row["prior_status"] == "completed":
        if row["activated_by"] == row["seq"]:  # the completing message itself, redelivered: re-announce
            output = json.loads(row["prior_output"]) if row["prior_output"] else {}
            return ClaimResult(Verdict.ALREADY_DONE, output=output)
        return ClaimResult(Verdict.COMPLETED_BEFORE)
    if row["run_status"] == "timed_out":
        return ClaimResult(Verdict.CLOSED)
    if not row["deps_met"]:
        return ClaimResult(Verdict.WAITING)
    return ClaimResult(Verdict.DUPLICATE)


def _written(item: LogRow | StepFinish, applied: set[tuple[str, str]], completed: dict[str, str]) -> Written:
    if not isinstance(item, StepFinish):
        return _WRITTEN
    if (item.row.correlation_id, item.row.track) not in applied:
        return Written(item.fence is None)  # no row to update (unfenced) counts as written
    run = completed.get(item.row.correlation_id) if item.ends_run else None
    return Written(True, run) if run is not None else _WRITTEN


_WRITTEN = Written(True)


def claim_params(claims: Iterable[Claim]) -> tuple[str]:
    """``_CLAIM_SQL``'s parameter: the batch as one JSON document (one native encode, cheaper than
    an array per column)."""
    batch = [
        {
            "cid": c.correlation_id,
            "track": c.track,
            "seq": c.stream_seq,
            "workflow": c.workflow,
            "user_id": c.user_id,
            "trace_id": c.trace_id,
            "details": c.started_details,
            "at": c.at.isoformat(),
            "deps": list(c.fan_in),
            "root": c.root,
            "gate": c.gate,
            "timeout_s": c.run_timeout_s,
            "definition": c.definition if c.root else None,
        }
        for c in claims
    ]
    return (dumps(batch),)


def write_params(items: Iterable[LogRow | StepFinish]) -> tuple[str, str]:
    """``_WRITE_SQL``'s parameters: every log row, and the step outcomes."""
    logs = []
    steps = []
    for item in items:
        row = item.row if isinstance(item, StepFinish) else item
        details = row.details
        if isinstance(item, StepFinish):
            if details is None and item.output is not None:
                details = {"payload": item.output}  # the same object: serialised once per row
            steps.append(
                {
                    "cid": row.correlation_id,
                    "track": row.track,
                    "status": item.status,
                    "output": item.output,
                    "error": row.error,
                    "at": row.occurred_at.isoformat(),
                    "fence": item.fence,
                    "ends_run": item.ends_run,
                }
            )
        fenced = isinstance(item, StepFinish) and item.fence is not None
        logs.append(
            {
                "u": row.user_id,
                "c": row.correlation_id,
                "t": row.track,
                "e": row.event_type,
                "a": row.attempt,
                "d": details,
                "er": row.error,
                "et": row.error_type,
                "tr": row.trace_id,
                "sq": row.stream_seq,
                "du": row.duration_ms,
                "oc": row.occurred_at.isoformat(),
                "f": fenced,
            }
        )
    return dumps(logs), dumps(steps)


class Ledger:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 500, linger_s: float = 0.0) -> None:
        self._pool = pool
        self._claims: GroupCommit[Claim, ClaimResult] = GroupCommit(
            self._claim_batch, name="ledger-claims", max_batch=max_batch, parallel=2, linger_s=linger_s
        )
        self._writes: GroupCommit[LogRow | StepFinish, Written] = GroupCommit(
            self._write_batch, name="ledger-writes", max_batch=max_batch, parallel=1, linger_s=linger_s
        )

    def start(self) -> None:
        self._claims.start()
        self._writes.start()

    async def close(self, timeout_s: float | None = None) -> int:
        """Flush what is queued; after ``timeout_s`` drop the rest. Returns how many were dropped."""
        claims, writes = await asyncio.gather(self._claims.close(timeout_s), self._writes.close(timeout_s))
        return claims + writes

    @property
    def transient_failures(self) -> int:
        return self._claims.failures + self._writes.failures

    # The futures are returned, not awaited here: a step's await resumes one coroutine fewer.

    def claim(self, claim: Claim) -> asyncio.Future[ClaimResult]:
        return self._claims.enqueue(claim)

    def record(self, row: LogRow) -> None:
        self._writes.enqueue(row)

    def record_durably(self, row: LogRow) -> asyncio.Future[Written]:
        return self._writes.enqueue(row)

    def finish(self, outcome: StepFinish) -> asyncio.Future[Written]:
        """Durably record a step's outcome (and, by ordering, every row recorded before it)."""
        return self._writes.enqueue(outcome)

    async def first_failure(self, correlation_id: str, track: str) -> datetime | None:
        """When this step first failed (for a dead letter's ``Tracks-First-Failure``); failure path only."""
        async with self._pool.acquire() as conn:
            value: datetime | None = await conn.fetchval(
                "SELECT min(occurred_at) FROM processing_logs "
                "WHERE correlation_id = $1 AND track_id = $2 AND event_type = 'failed'",
                correlation_id,
                track,
            )
        return value

    async def _claim_batch(self, claims: Sequence[Claim]) -> list[ClaimResult]:
        # One statement may not claim the same step twice: the first wins, the rest are duplicates.
        first: dict[tuple[str, str], Claim] = {}
        for c in claims:
            first.setdefault((c.correlation_id, c.track), c)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_CLAIM_SQL, *claim_params(first.values()))
        by_key = {(r["cid"], r["track"]): r for r in rows}
        results = []
        for c in claims:
            key = (c.correlation_id, c.track)
            if first[key] is not c:
                results.append(ClaimResult(Verdict.DUPLICATE))
                continue
            results.append(_verdict(by_key[key]))
        return results

    async def _write_batch(self, items: Sequence[LogRow | StepFinish]) -> list[Written]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_WRITE_SQL, *write_params(items))
        applied: set[tuple[str, str]] = set()
        completed: dict[str, str] = {}  # correlation ID -> workflow of the run this batch completed
        for r in rows:
            if r["track_id"] is None:
                completed[r["correlation_id"]] = r["completed_run"]
            else:
                applied.add((r["correlation_id"], r["track_id"]))
        return [_written(item, applied, completed) for item in items]
