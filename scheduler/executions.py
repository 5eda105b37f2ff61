"""Execution history in PostgreSQL (``job_executions``): one row per tick, decided under a lock.

A tick's row is the decision of record. Each replica that fires a tick runs :meth:`claim` (one
SQL function call) under a per-schedule advisory lock: the first inserts the row (``running``,
``queued`` or ``skipped`` by the overlap policy); later ones find it and follow it, re-publishing
a running tick with the same ``Nats-Msg-Id`` so JetStream de-duplicates it — and a replica that
died between insert and publish is covered by the others. Statuses ``skipped`` and ``queued`` come
from migration 0004; the reason of a skip is ``execution_metadata.reason``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from scheduler.misfire import Skip
from scheduler.schedules import Schedule

__all__ = ["Claim", "Decision", "ExecutionStore", "Finished", "Released"]

# The same per-schedule lock as tracks_claim_tick takes.
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('job_schedule:' || $1::uuid::text, 0))"


class Decision(StrEnum):
    PUBLISH = "publish"
    QUEUED = "queued"
    SKIPPED = "skipped"
    DONE = "done"
    """Another replica owns this tick and it is no longer running: nothing to do."""


@dataclass(frozen=True)
class Claim:
    decision: Decision
    correlation_id: str
    reason: str | None = None


@dataclass(frozen=True)
class Finished:
    schedule_id: uuid.UUID | None
    correlation_id: str


@dataclass(frozen=True)
class Released:
    scheduled_for: datetime
    correlation_id: str


class ExecutionStore:
    def __init__(self, pool: asyncpg.Pool, *, instance: str) -> None:
        self._pool = pool
        self._instance = instance

    async def claim(
        self, schedule: Schedule, scheduled_for: datetime, correlation_id: str, *, follow_s: float
    ) -> Claim:
        """Decide one tick for all replicas; see :meth:`claim_many`."""
        return (await self.claim_many([(schedule, scheduled_for, correlation_id)], follow_s=follow_s))[0]

    async def claim_many(
        self, ticks: Sequence[tuple[Schedule, datetime, str]], *, follow_s: float
    ) -> list[Claim]:
        """Decide ticks for all replicas in one call and one commit (``tracks_claim_ticks``, migration 0004).

        ``follow_s``: how recent a running tick must be for a later replica to publish it again.
        Ticks are sent sorted by (schedule, time) — the lock order that keeps batches deadlock-free.
        """
        order = sorted(range(len(ticks)), key=lambda i: (ticks[i][0].id, ticks[i][1]))
        rows = await self._pool.fetch(
            """SELECT o_index, o_decision, o_correlation_id, o_reason
               FROM tracks_claim_ticks($1::uuid[], $2::timestamptz[], $3::text[], $4::text[],
                                       $5, $6::jsonb[])""",
            [ticks[i][0].id for i in order],
            [ticks[i][1] for i in order],
            [ticks[i][2] for i in order],
            [ticks[i][0].overlap_policy.value for i in order],
            follow_s,
            [self._metadata(ticks[i][0], None) for i in order],
        )
        claims: list[Claim | None] = [None] * len(ticks)
        for row in rows:
            claims[order[row["o_index"] - 1]] = Claim(
                Decision(row["o_decision"]), row["o_correlation_id"], row["o_reason"]
            )
        assert all(c is not None for c in claims)
        return [c for c in claims if c is not None]

    def _metadata(self, schedule: Schedule, reason: str | None, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "instance": self._instance,
            "target": schedule.target,
            "jobType": schedule.job_type,
            "priority": schedule.priority.value,
            **extra,
        }
        if reason is not None:
            meta["reason"] = reason
        return meta

    async def record_skips(self, schedule: Schedule, skips: Sequence[Skip]) -> int:
        """One ``skipped`` row per tick (idempotent across replicas); returns how many were new."""
        if not skips:
            return 0
        metas = [
            self._metadata(
                schedule,
                s.reason,
                **({"skippedUntil": s.skipped_until.isoformat()} if s.skipped_until else {}),
            )
            for s in skips
        ]
        rows = [
            (schedule.id, uuid.uuid4().hex, s.scheduled_for, meta)
            for s, meta in zip(skips, metas, strict=True)
        ]
        inserted = await self._pool.fetchval(
            """WITH new AS (
                   INSERT INTO job_executions (schedule_id, correlation_id, status, scheduled_for,
                                               completed_at, execution_metadata)
                   SELECT r.schedule_id, r.cid, 'skipped', r.scheduled_for, now(), r.meta
                   FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[])
                        AS r(schedule_id, cid, scheduled_for, meta)
                   ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING 1)
               SELECT count(*) FROM new""",
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
        )  # fmt: skip
        return int(inserted or 0)

    async def finish(
        self,
        correlation_id: str,
        status: str,
        *,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Finished | None:
        """A running execution ended as its run did (``completed``, ``failed``, ``timed_out`` or
        ``cancelled``, :mod:`scheduler.history`); ``None`` when no running row has this ID."""
        row = await self._pool.fetchrow(
            """UPDATE job_executions
               SET status = $2, completed_at = now(), error_message = $3,
                   execution_metadata = execution_metadata || $4::jsonb
               WHERE correlation_id = $1 AND status = 'running' RETURNING schedule_id""",
            correlation_id, status, error, details or {},
        )  # fmt: skip
        return Finished(row["schedule_id"], correlation_id) if row is not None else None

    async def sweep_timeouts(self, default_timeout_s: float) -> list[Finished]:
        """Mark runs that outlived their timeout as failed; several replicas may sweep at once."""
        rows = await self._pool.fetch(
            """UPDATE job_executions e
               SET status = 'failed', completed_at = now(),
                   error_message = format('timed out: still running %s s after it started '
                                          '(timeout %s s); no completed or failed event arrived',
                                          round(extract(epoch FROM now() - e.started_at)),
                                          coalesce(s.timeout_s, $1)),
                   execution_metadata = e.execution_metadata || '{"timedOut": true}'::jsonb
               FROM job_schedules s
               WHERE e.schedule_id = s.id AND e.status = 'running'
                 AND e.started_at < now() - make_interval(secs => coalesce(s.timeout_s, $1))
               RETURNING e.schedule_id, e.correlation_id""",
            default_timeout_s,
        )
        return [Finished(r["schedule_id"], r["correlation_id"]) for r in rows]

    async def release_queued(self, schedule_id: uuid.UUID) -> Released | None:
        """When nothing runs any more, turn the oldest queued tick into a running one."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, schedule_id)
            row = await conn.fetchrow(
                """UPDATE job_executions SET status = 'running', started_at = now(),
                          execution_metadata = execution_metadata || '{"releasedFromQueue": true}'::jsonb
                   WHERE id = (SELECT id FROM job_executions WHERE schedule_id = $1 AND status = 'queued'
                               ORDER BY scheduled_for LIMIT 1)
                     AND NOT EXISTS (SELECT 1 FROM job_executions
                                     WHERE schedule_id = $1 AND status = 'running')
                   RETURNING scheduled_for, correlation_id""",
                schedule_id,
            )
        return Released(row["scheduled_for"], row["correlation_id"]) if row is not None else None

    async def last_ticks(self, schedule_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, datetime]:
        """The latest recorded tick of each schedule (any status), for catch-up after downtime."""
        rows = await self._pool.fetch(
            """SELECT s.id,
                      (SELECT max(e.scheduled_for) FROM job_executions e WHERE e.schedule_id = s.id) AS last
               FROM unnest($1::uuid[]) AS s(id)""",
            list(schedule_ids),
        )
        return {r["id"]: r["last"] for r in rows if r["last"] is not None}

    async def history(self, schedule_id: uuid.UUID, limit: int = 20) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            """SELECT status, scheduled_for, started_at, completed_at, correlation_id, error_message,
                      execution_metadata
               FROM job_executions WHERE schedule_id = $1
               ORDER BY scheduled_for DESC NULLS LAST, started_at DESC LIMIT $2""",
            schedule_id, limit,
        )  # fmt: skip
