"""The ledger: ``track_steps`` (who may run a step) and ``processing_logs`` (what happened).

Three operations, each one SQL statement per batch of concurrent callers:

- :meth:`Ledger.claim` — may this message run the step? One upsert decides for the whole
  batch: a new step, a retry of the same message, or a re-activation of a failed step
  runs (and its ``started`` row is written by the same statement); a completed step
  answers with its recorded output instead (it is never re-run); a step claimed by
  another message is a duplicate.
- :meth:`Ledger.record` — append a ``processing_logs`` row (not waited for).
- :meth:`Ledger.finish` — mark the step completed/failed with its output or error, plus a
  log row, and wait until it is durable. Writes are written in order, so once a finish is
  durable, every row recorded before it is too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg

from .batcher import GroupCommit

__all__ = ["Claim", "ClaimResult", "Ledger", "LogRow", "StepFinish", "Verdict"]


class Verdict(StrEnum):
    RUN = "run"
    ALREADY_DONE = "already_done"
    DUPLICATE = "duplicate"


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


@dataclass(frozen=True)
class ClaimResult:
    verdict: Verdict
    attempt: int = 0
    output: dict[str, Any] | None = None


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
    """A step's outcome: updates ``track_steps`` and appends its log row (``row``) in one write."""

    status: str  # completed | failed
    row: LogRow
    output: dict[str, Any] | None = None


_CLAIM_SQL = """
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::timestamptz[])
        AS r(cid, track, seq, workflow, user_id, trace_id, details, at)
), claimed AS (
    INSERT INTO track_steps AS s
        (correlation_id, track_id, workflow, user_id, status, attempts, activated_by, trace_id)
    SELECT cid, track, workflow, user_id, 'running', 1, seq, trace_id FROM req
    ON CONFLICT (correlation_id, track_id) DO UPDATE
        SET attempts = s.attempts + 1, status = 'running', activated_by = EXCLUDED.activated_by,
            error = NULL, finished_at = NULL, updated_at = now()
        WHERE s.status IN ('failed', 'timed_out')
           OR (s.status = 'running' AND s.activated_by = EXCLUDED.activated_by)
    RETURNING s.correlation_id, s.track_id, s.attempts
), started AS (
    INSERT INTO processing_logs (user_id, correlation_id, track_id, event_type, attempt, details, trace_id,
                                 stream_seq, occurred_at)
    SELECT r.user_id, r.cid, r.track, 'started', c.attempts, r.details::jsonb, r.trace_id, r.seq, r.at
    FROM claimed c JOIN req r ON r.cid = c.correlation_id AND r.track = c.track_id
)
SELECT r.cid, r.track, c.attempts, prior.status AS prior_status, prior.output::text AS prior_output
FROM req r
LEFT JOIN claimed c ON c.correlation_id = r.cid AND c.track_id = r.track
LEFT JOIN track_steps prior ON prior.correlation_id = r.cid AND prior.track_id = r.track
"""

_WRITE_SQL = """
WITH logs AS (
    INSERT INTO processing_logs (user_id, correlation_id, track_id, event_type, attempt, details, error,
                                 error_type, trace_id, stream_seq, duration_ms, occurred_at)
    SELECT u, c, t, e, a, d::jsonb, er, et, tr, sq, du, oc
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::bigint[], $11::float8[], $12::timestamptz[])
        AS x(u, c, t, e, a, d, er, et, tr, sq, du, oc)
), steps AS (
    UPDATE track_steps s
    SET status = x.status, output = x.output::jsonb, error = x.error, finished_at = x.at, updated_at = now()
    FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[])
        AS x(cid, track, status, output, error, at)
    WHERE s.correlation_id = x.cid AND s.track_id = x.track
)
SELECT 1
"""


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


class Ledger:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 500, linger_s: float = 0.0) -> None:
        self._pool = pool
        self._claims: GroupCommit[Claim, ClaimResult] = GroupCommit(
            self._claim_batch, name="ledger-claims", max_batch=max_batch, parallel=2, linger_s=linger_s
        )
        self._writes: GroupCommit[LogRow | StepFinish, None] = GroupCommit(
            self._write_batch, name="ledger-writes", max_batch=max_batch, parallel=1, linger_s=linger_s
        )

    def start(self) -> None:
        self._claims.start()
        self._writes.start()

    async def close(self) -> None:
        await self._claims.close()
        await self._writes.close()

    @property
    def transient_failures(self) -> int:
        return self._claims.failures + self._writes.failures

    async def claim(self, claim: Claim) -> ClaimResult:
        return await self._claims.submit(claim)

    def record(self, row: LogRow) -> None:
        self._writes.enqueue(row)

    async def record_durably(self, row: LogRow) -> None:
        await self._writes.submit(row)

    async def finish(self, outcome: StepFinish) -> None:
        """Durably record a step's outcome (and, by ordering, every row recorded before it)."""
        await self._writes.submit(outcome)

    async def first_failure(self, correlation_id: str, track: str) -> datetime | None:
        """When this step first failed (for a dead letter's ``Tracks-First-Failure``); failure path only."""
        async with self._pool.acquire() as conn:
            value: datetime | None = await conn.fetchval(
                "SELECT min(occurred_at) FROM processing_logs "
                "WHERE correlation_id = $1 AND track_id = $2 AND event_type = 'failed'",
                correlation_id, track,
            )
        return value

    async def _claim_batch(self, claims: Sequence[Claim]) -> list[ClaimResult]:
        # One statement may not claim the same step twice: the first wins, the rest are duplicates.
        first: dict[tuple[str, str], Claim] = {}
        for c in claims:
            first.setdefault((c.correlation_id, c.track), c)
        unique = list(first.values())
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _CLAIM_SQL,
                [c.correlation_id for c in unique], [c.track for c in unique], [c.stream_seq for c in unique],
                [c.workflow for c in unique], [c.user_id for c in unique], [c.trace_id for c in unique],
                [_json(c.started_details) for c in unique], [c.at for c in unique],
            )
        by_key = {(r["cid"], r["track"]): r for r in rows}
        results = []
        for c in claims:
            key = (c.correlation_id, c.track)
            if first[key] is not c:
                results.append(ClaimResult(Verdict.DUPLICATE))
                continue
            row = by_key[key]
            if row["attempts"] is not None:
                results.append(ClaimResult(Verdict.RUN, attempt=row["attempts"]))
            elif row["prior_status"] == "completed":
                output = json.loads(row["prior_output"]) if row["prior_output"] else {}
                results.append(ClaimResult(Verdict.ALREADY_DONE, output=output))
            else:
                results.append(ClaimResult(Verdict.DUPLICATE))
        return results

    async def _write_batch(self, items: Sequence[LogRow | StepFinish]) -> list[None]:
        logs = [i.row if isinstance(i, StepFinish) else i for i in items]
        steps = [i for i in items if isinstance(i, StepFinish)]
        outputs = {id(s): _json(s.output) for s in steps}  # serialised once, used twice
        details = [
            f'{{"payload":{outputs[id(i)]}}}' if isinstance(i, StepFinish) and i.row.details is None
            and i.output is not None else _json(i.row.details if isinstance(i, StepFinish) else i.details)
            for i in items
        ]
        async with self._pool.acquire() as conn:
            await conn.execute(
                _WRITE_SQL,
                [r.user_id for r in logs], [r.correlation_id for r in logs], [r.track for r in logs],
                [r.event_type for r in logs], [r.attempt for r in logs], details,
                [r.error for r in logs], [r.error_type for r in logs], [r.trace_id for r in logs],
                [r.stream_seq for r in logs], [r.duration_ms for r in logs], [r.occurred_at for r in logs],
                [s.row.correlation_id for s in steps], [s.row.track for s in steps], [s.status for s in steps],
                [outputs[id(s)] for s in steps], [s.row.error for s in steps], [s.row.occurred_at for s in steps],
            )
        return [None] * len(items)
