"""Cancelling a run: ``tracks cancel``, :meth:`TracksClient.cancel`, ``tracksapi.cancel``.

The run's row becomes ``cancelled`` and a ``cancelled`` record is written (one transaction),
then ``tracks.workflow.<wf>.cancelled.<cid>`` is published. From then on the ledger's claim
refuses every further step of the run (``Verdict.CLOSED``: recorded as ``skipped``, acked);
steps in flight are told through their context (:attr:`TrackContext.cancelled`) by every
runtime that hears the event, and may finish (their output is recorded, nothing downstream
starts) or stop.

Idempotent: asking again for a cancelled run changes nothing and publishes the announcement
again under the same ``Nats-Msg-Id``, which JetStream drops as a duplicate within its window.
So a crash between the write and the publish loses nothing: cancelling again announces it.

Steps waiting at a manual gate end ``cancelled`` with the run (their gate will never open), so
retention takes the run like any finished one.

Only a running run can be cancelled; a finished one (completed, failed, timed out) is left as
it is and the caller is told. A cancelled run is final: ``tracks resume`` refuses it (as
Temporal does not continue a cancelled workflow); start a new run instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from actors.ledger.progress import ProgressError
from actors.ledger.runs import announce
from foundation.jetstream.publisher import EventPublisher, bounded
from subjects import RunOutcome

__all__ = ["Cancelled", "cancel"]

_PREFIX = "cancelled"


@dataclass(frozen=True)
class Cancelled:
    correlation_id: str
    workflow: str
    reason: str | None
    already: bool
    """The run was cancelled before this request (its announcement was sent again)."""

    def as_wire(self) -> dict[str, object]:
        return {
            "correlationId": self.correlation_id,
            "workflow": self.workflow,
            "status": "cancelled",
            "reason": self.reason,
            "alreadyCancelled": self.already,
        }


async def cancel(
    pool: asyncpg.Pool, publisher: EventPublisher, correlation_id: str, reason: str | None = None
) -> Cancelled:
    """Cancel a running run (see the module's docstring); :class:`ProgressError` when it cannot be."""
    reason = bounded(reason.strip()) if reason and reason.strip() else None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT workflow, status, error FROM workflow_runs WHERE correlation_id = $1 FOR UPDATE",
            correlation_id,
        )
        if row is None:
            raise ProgressError(f"no workflow run with correlation ID {correlation_id}")
        already = row["status"] == "cancelled"
        if already:
            reason = _reason_of(row["error"])
        elif row["status"] != "running":
            raise ProgressError(
                f"run {correlation_id} already {row['status'].replace('_', ' ')}; nothing to cancel"
            )
        else:
            await conn.execute(
                """UPDATE workflow_runs SET status = 'cancelled', error = $2, finished_at = now(),
                          updated_at = now()
                   WHERE correlation_id = $1""",
                correlation_id,
                f"{_PREFIX}: {reason}" if reason else _PREFIX,
            )
            # Steps waiting at a manual gate will never be released (proceed refuses a cancelled
            # run): they end with it, so retention can take the run like any finished one.
            await conn.execute(
                """UPDATE track_steps SET status = 'cancelled', finished_at = now(), updated_at = now(),
                          error = 'the run was cancelled at its gate'
                   WHERE correlation_id = $1 AND status = 'gated'""",
                correlation_id,
            )
            await conn.execute(
                """INSERT INTO processing_logs (correlation_id, track_id, event_type, attempt, details, error,
                                                occurred_at)
                   VALUES ($1, $2, 'cancelled', 0, $3::text::jsonb, $4, now())""",
                correlation_id,
                row["workflow"],
                json.dumps({"reason": reason}),
                f"run cancelled: {reason}" if reason else "run cancelled",
            )
    await announce(publisher, row["workflow"], RunOutcome.CANCELLED, correlation_id, {"reason": reason})
    return Cancelled(correlation_id, row["workflow"], reason, already)


def _reason_of(error: str | None) -> str | None:
    if error is None or not error.startswith(f"{_PREFIX}: "):
        return None
    return error[len(_PREFIX) + 2 :]
