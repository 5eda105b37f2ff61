"""Workflow runs: completed when every leaf step completed, failed by a dead letter, timed out
by the reaper. Each transition is one statement that only one caller can win (row locks);
the event announcing it carries a fixed ``Nats-Msg-Id``, so re-announcing after a crash
between the write and the publish is harmless.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from actors.runtime.metrics import run_ended
from foundation import telemetry
from foundation.group_commit import GroupCommit
from foundation.jetstream.publisher import EventPublisher
from subjects import EventType, RunOutcome, encode_event, headers, names
from subjects.jsonwire import dumps

__all__ = ["RunState", "Runs", "announce"]

log = logging.getLogger(__name__)

# Bounded by the batch's keys and joined by hash, as the ledger's statements (see actors.ledger.sql).
_COMPLETE_SQL = """
WITH req AS (
    SELECT DISTINCT ON (cid) *
    FROM jsonb_to_recordset($1::text::jsonb) AS r(cid text, leaves text[])
    ORDER BY cid
), done AS (
    SELECT r.cid, cardinality(r.leaves) AS need, count(s.track_id) AS n,
           CASE WHEN cardinality(r.leaves) = 1
                THEN (array_agg(s.output) FILTER (WHERE s.track_id IS NOT NULL))[1]
                ELSE jsonb_object_agg(s.track_id, s.output) FILTER (WHERE s.track_id IS NOT NULL)
           END AS result
    FROM req r LEFT JOIN track_steps s
        ON s.correlation_id = r.cid AND s.track_id = ANY (r.leaves) AND s.status = 'completed'
           AND s.correlation_id = ANY (ARRAY(SELECT cid FROM req))
    GROUP BY r.cid, r.leaves
), flipped AS (
    UPDATE workflow_runs w
    SET status = 'completed', result = d.result, finished_at = now(), updated_at = now()
    FROM done d
    WHERE w.correlation_id = ANY (ARRAY(SELECT cid FROM req)) AND w.correlation_id = d.cid
      AND w.status = 'running' AND d.n = d.need
    RETURNING w.correlation_id, w.workflow, w.status, w.result
)
SELECT r.cid, coalesce(f.workflow, w.workflow) AS workflow, coalesce(f.status, w.status) AS status,
       coalesce(f.result, w.result)::text AS result
FROM req r
LEFT JOIN flipped f ON f.correlation_id = r.cid
LEFT JOIN workflow_runs w ON w.correlation_id = r.cid AND w.correlation_id = ANY (ARRAY(SELECT cid FROM req))
"""


# Late runs are marked and logged in one statement (``fresh``); runs marked earlier whose
# announcement failed (``announced_at`` still NULL: the partial index of migration 0016) come too,
# once they are a few seconds old (a younger one may be another reaper's, being announced now).
_REAP_SQL = """
WITH late AS (
    UPDATE workflow_runs
    SET status = 'timed_out', finished_at = now(), updated_at = now(), announced_at = NULL,
        error = 'the run did not finish before its deadline ' || deadline::text
    WHERE status = 'running' AND deadline < now()
    RETURNING correlation_id, workflow, deadline, trace_context
), logged AS (
    INSERT INTO processing_logs (correlation_id, track_id, event_type, attempt, details, error, occurred_at)
    SELECT correlation_id, workflow, 'timed_out', 0, jsonb_build_object('deadline', deadline),
           'workflow run timed out', now()
    FROM late
)
SELECT correlation_id, workflow, deadline, trace_context, true AS fresh FROM late
UNION ALL
SELECT correlation_id, workflow, deadline, trace_context, false AS fresh
FROM workflow_runs
WHERE status = 'timed_out' AND announced_at IS NULL AND finished_at < now() - interval '5 seconds'
ORDER BY 5 DESC
LIMIT 1000
"""


@dataclass(frozen=True)
class RunState:
    workflow: str
    status: str
    result: dict[str, Any] | None


class Runs:
    """Run transitions; leaf checks are group-committed (one statement per batch of leaves)."""

    def __init__(self, pool: asyncpg.Pool, publisher: EventPublisher) -> None:
        self._pool = pool
        self._publisher = publisher
        self._checks: GroupCommit[tuple[str, tuple[str, ...]], RunState | None] = GroupCommit(
            self._check_batch, name="run-completion", max_batch=500, parallel=2
        )

    def start(self) -> None:
        self._checks.start()

    async def close(self, timeout_s: float | None = None) -> None:
        await self._checks.close(timeout_s=timeout_s)

    async def _check_batch(self, items: Sequence[tuple[str, tuple[str, ...]]]) -> list[RunState | None]:
        batch = [{"cid": cid, "leaves": list(leaves)} for cid, leaves in items]
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_COMPLETE_SQL, dumps(batch))
        states = {
            r["cid"]: RunState(r["workflow"], r["status"], json.loads(r["result"]) if r["result"] else None)
            for r in rows
            if r["workflow"] is not None
        }
        return [states.get(cid) for cid, _ in items]

    async def leaf_completed(self, correlation_id: str, leaves: tuple[str, ...]) -> RunState | None:
        """After a leaf step completed (or was re-announced): complete and announce the run if done."""
        state = await self._checks.enqueue((correlation_id, leaves))
        if state is None:
            return None  # not a workflow run (a track triggered on its own)
        if state.status == RunOutcome.COMPLETED:
            await self._announce(
                state.workflow, RunOutcome.COMPLETED, correlation_id, {"result": state.result}
            )
        return state

    async def announce_completed(
        self, workflow: str, correlation_id: str, result: dict[str, Any] | None
    ) -> None:
        """A run the ledger completed with its only leaf's outcome (one statement, no check needed)."""
        await self._announce(workflow, RunOutcome.COMPLETED, correlation_id, {"result": result})

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

    async def fail_unopened(self, correlation_id: str, workflow: str, track: str, error: str) -> None:
        """A root track's trigger was refused before any run began: record the run as failed and
        announce it, so a waiter on the cid learns it. A run that exists already is left alone (a
        bad message must not end someone else's good run)."""
        row = await self._pool.fetchrow(
            """INSERT INTO workflow_runs (correlation_id, workflow, status, error, started_at, finished_at)
               VALUES ($1, $2, 'failed', $3, now(), now())
               ON CONFLICT (correlation_id) DO NOTHING RETURNING workflow""",
            correlation_id,
            workflow,
            f"{track}: {error}",
        )
        if row is not None:
            await self._announce(
                workflow, RunOutcome.FAILED, correlation_id, {"track": track, "error": error}
            )

    async def reap_timeouts(self) -> list[str]:
        """Mark runs past their deadline timed out and announce each; returns the IDs announced.

        Marking and logging are one statement; ``announced_at`` is set only once the event was
        published. A run whose announcement failed (NATS away, the process killed between the
        statement and the publish) is announced by the next round of any runtime's reaper.
        """
        rows = await self._pool.fetch(_REAP_SQL)
        announced: list[str] = []
        for r in rows:
            if r["fresh"]:
                log.warning(
                    "workflow %s run %s timed out (deadline %s)",
                    r["workflow"],
                    r["correlation_id"],
                    r["deadline"],
                )
            try:
                with telemetry.continued(  # the outcome event belongs to the run's trace
                    f"timeout {r['workflow']}",
                    r["trace_context"],
                    {
                        "tracks.workflow": r["workflow"],
                        "messaging.message.conversation_id": r["correlation_id"],
                    },
                ):
                    await self._announce(
                        r["workflow"],
                        RunOutcome.TIMED_OUT,
                        r["correlation_id"],
                        {"deadline": r["deadline"].isoformat() if r["deadline"] else None},
                    )
            except Exception as exc:  # NATS away: the next round announces it
                log.warning(
                    "announcing that run %s timed out failed (%s); the next deadline check retries",
                    r["correlation_id"],
                    exc,
                )
                continue
            announced.append(r["correlation_id"])
        if announced:
            await self._pool.execute(
                """UPDATE workflow_runs SET announced_at = now()
                   WHERE correlation_id = ANY ($1::text[]) AND status = 'timed_out'""",
                announced,
            )
        return announced

    async def _announce(
        self, workflow: str, outcome: RunOutcome, correlation_id: str, payload: dict[str, Any]
    ) -> None:
        await announce(self._publisher, workflow, outcome, correlation_id, payload)


async def announce(
    publisher: EventPublisher,
    workflow: str,
    outcome: RunOutcome,
    correlation_id: str,
    payload: dict[str, Any],
) -> None:
    """``tracks.workflow.<wf>.<outcome>.<cid>``, once per run and outcome (a fixed ``Nats-Msg-Id``)."""
    body = encode_event(
        workflow,
        EventType.COMPLETED if outcome is RunOutcome.COMPLETED else EventType.FAILED,
        {"outcome": str(outcome), **payload},
        correlation_id=correlation_id,
        source_track=workflow,
        workflow=workflow,
    )
    await publisher.publish(
        names.workflow_event(workflow, outcome, correlation_id),
        body,
        {headers.MSG_ID: f"{correlation_id}:workflow:{outcome}"},
    )
    run_ended(workflow, outcome)
