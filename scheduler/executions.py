"""Execution history in PostgreSQL (``job_executions``): one row per tick, decided under a lock.

A tick's row is the decision of record. Each replica that fires a tick runs :meth:`claim`
under a per-schedule advisory lock: the first inserts the row (``running``, ``queued`` or
``skipped`` by the overlap policy); later ones find it and follow it, re-publishing a running
tick with the same ``Nats-Msg-Id`` so JetStream de-duplicates it — and a replica that died
between insert and publish is covered by the others. Statuses ``skipped`` and ``queued`` come
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

from .misfire import Skip
from .schedules import OverlapPolicy, Schedule

__all__ = ["Claim", "Decision", "ExecutionStore", "Finished", "Released"]

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
        """Decide a tick once for all replicas; ``follow_s``: how recent a running tick is re-published."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, schedule.id)
            existing = await conn.fetchrow(
                """SELECT status, correlation_id, started_at > now() - make_interval(secs => $3) AS fresh
                   FROM job_executions WHERE schedule_id = $1 AND scheduled_for = $2""",
                schedule.id, scheduled_for, follow_s,
            )  # fmt: skip
            if existing is not None:
                follow = existing["status"] == "running" and existing["fresh"]
                return Claim(Decision.PUBLISH if follow else Decision.DONE, existing["correlation_id"])
            status, reason = await self._overlap(conn, schedule, scheduled_for)
            await conn.execute(
                """INSERT INTO job_executions (schedule_id, correlation_id, status, scheduled_for,
                                               completed_at, execution_metadata)
                   VALUES ($1, $2, $3, $4, CASE WHEN $3 = 'skipped' THEN now() END, $5)""",
                schedule.id, correlation_id, status, scheduled_for, self._metadata(schedule, reason),
            )  # fmt: skip
        decision = {"running": Decision.PUBLISH, "queued": Decision.QUEUED}.get(status, Decision.SKIPPED)
        return Claim(decision, correlation_id, reason)

    async def _overlap(
        self,
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        schedule: Schedule,
        scheduled_for: datetime,
    ) -> tuple[str, str | None]:
        if schedule.overlap_policy is OverlapPolicy.ALLOW:
            return "running", None
        active = {
            r["status"]: r["n"]
            for r in await conn.fetch(
                """SELECT status, count(*) AS n FROM job_executions
                   WHERE schedule_id = $1 AND status IN ('running', 'queued') AND scheduled_for < $2
                   GROUP BY status""",
                schedule.id,
                scheduled_for,
            )
        }
        if not active:
            return "running", None
        if schedule.overlap_policy is OverlapPolicy.QUEUE and not active.get("queued"):
            return "queued", "overlap: waiting for the previous run"
        if active.get("queued"):
            return "skipped", "overlap: a run is already queued"
        return "skipped", "overlap: the previous run is unfinished"

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

    async def record_skips(self, schedule: Schedule, skips: Sequence[Skip], *, unrecorded: int = 0) -> int:
        """One ``skipped`` row per tick (idempotent across replicas); returns how many were new."""
        if not skips:
            return 0
        metas = [self._metadata(schedule, s.reason) for s in skips]
        if unrecorded:
            metas[0]["alsoSkippedBefore"] = unrecorded
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
        """A running execution completed or failed; ``None`` when no running row has this ID."""
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

    async def publish_failed(self, correlation_id: str, error: str) -> None:
        await self.finish(correlation_id, "failed", error=f"tick not published: {error}")

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
