"""Workflow runs: completed when every leaf step completed, failed by a dead letter, timed out
by the reaper. Each transition is one statement that only one caller can win (row locks);
the event announcing it carries a fixed ``Nats-Msg-Id``, so re-announcing after a crash
between the write and the publish is harmless.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from subjects import EventType, RunOutcome, encode_event, headers, names

from .publisher import EventPublisher

__all__ = ["RunState", "Runs"]

log = logging.getLogger(__name__)

_COMPLETE_SQL = """
WITH done AS (
    SELECT count(*) AS n,
           CASE WHEN cardinality($2::text[]) = 1 THEN (array_agg(output))[1]
                ELSE jsonb_object_agg(track_id, output) END AS result
    FROM track_steps WHERE correlation_id = $1 AND track_id = ANY ($2) AND status = 'completed'
), flipped AS (
    UPDATE workflow_runs w
    SET status = 'completed', result = done.result, finished_at = now(), updated_at = now()
    FROM done WHERE w.correlation_id = $1 AND w.status = 'running' AND done.n = cardinality($2::text[])
    RETURNING w.workflow, w.status, w.result
)
SELECT workflow, status, result::text FROM flipped
UNION ALL
SELECT workflow, status, result::text FROM workflow_runs
WHERE correlation_id = $1 AND NOT EXISTS (SELECT 1 FROM flipped)
"""


@dataclass(frozen=True)
class RunState:
    workflow: str
    status: str
    result: dict[str, Any] | None


class Runs:
    def __init__(self, pool: asyncpg.Pool, publisher: EventPublisher) -> None:
        self._pool = pool
        self._publisher = publisher

    async def leaf_completed(self, correlation_id: str, leaves: tuple[str, ...]) -> RunState | None:
        """After a leaf step completed (or was re-announced): complete and announce the run if done."""
        row = await self._pool.fetchrow(_COMPLETE_SQL, correlation_id, list(leaves))
        if row is None:
            return None  # not a workflow run (a track triggered on its own)
        state = RunState(row["workflow"], row["status"], json.loads(row["result"]) if row["result"] else None)
        if state.status == RunOutcome.COMPLETED:
            await self._announce(
                state.workflow, RunOutcome.COMPLETED, correlation_id, {"result": state.result}
            )
        return state

    async def fail(self, correlation_id: str, track: str, error: str) -> None:
        """A step was dead-lettered: the run failed (until a replay or ``tracks resume`` reopens it)."""
        row = await self._pool.fetchrow(
            """UPDATE workflow_runs SET status = 'failed', error = $2, finished_at = now(), updated_at = now()
               WHERE correlation_id = $1 AND status IN ('running', 'failed') RETURNING workflow""",
            correlation_id,
            f"{track}: {error}",
        )
        if row is not None:
            await self._announce(
                row["workflow"], RunOutcome.FAILED, correlation_id, {"track": track, "error": error}
            )

    async def reap_timeouts(self) -> list[str]:
        """Mark runs past their deadline timed out and announce each; returns their IDs."""
        rows = await self._pool.fetch(
            """UPDATE workflow_runs SET status = 'timed_out', finished_at = now(), updated_at = now(),
                      error = 'the run did not finish before its deadline ' || deadline::text
               WHERE status = 'running' AND deadline < now()
               RETURNING correlation_id, workflow, deadline"""
        )
        for r in rows:
            log.warning(
                "workflow %s run %s timed out (deadline %s)",
                r["workflow"],
                r["correlation_id"],
                r["deadline"],
            )
            await self._pool.execute(
                """INSERT INTO processing_logs (correlation_id, track_id, event_type, attempt, details, error,
                                                occurred_at)
                   VALUES ($1, $2, 'timed_out', 0, $3::text::jsonb, 'workflow run timed out', now())""",
                r["correlation_id"],
                r["workflow"],
                json.dumps({"deadline": r["deadline"].isoformat()}),
            )
            await self._announce(
                r["workflow"],
                RunOutcome.TIMED_OUT,
                r["correlation_id"],
                {"deadline": r["deadline"].isoformat()},
            )
        return [r["correlation_id"] for r in rows]

    async def _announce(
        self, workflow: str, outcome: RunOutcome, correlation_id: str, payload: dict[str, Any]
    ) -> None:
        body = encode_event(
            workflow,
            EventType.COMPLETED if outcome is RunOutcome.COMPLETED else EventType.FAILED,
            {"outcome": str(outcome), **payload},
            correlation_id=correlation_id,
            source_track=workflow,
            workflow=workflow,
        )
        await self._publisher.publish(
            names.workflow_event(workflow, outcome, correlation_id),
            body,
            {headers.MSG_ID: f"{correlation_id}:workflow:{outcome}"},
        )
