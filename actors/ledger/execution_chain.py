"""A run's execution chain, rebuilt from ``processing_logs`` and ``track_steps``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from subjects import SubjectKind, names

__all__ = ["ChainEvent", "StepSummary", "execution_chain", "started_details", "step_summaries"]


@dataclass(frozen=True)
class ChainEvent:
    occurred_at: datetime
    track: str
    event_type: str
    attempt: int
    duration_ms: float | None
    error: str | None
    trace_id: str | None
    details: dict[str, Any] | None


@dataclass(frozen=True)
class StepSummary:
    track: str
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    error: str | None


# A ``completed`` row without a payload (``TRACKS_RECORD_PAYLOADS=once``: the output is stored
# once, in ``track_steps.output``) shows the step's output there: a step completes once, so its
# one ``completed`` row and its output go together. A row holding a payload (``full``, a redacted
# copy, rows written before) shows its own; ``none`` writes ``"payload": null``, shown as such.
_CHAIN_SQL = """
SELECT l.occurred_at, l.track_id, l.event_type, l.attempt, l.duration_ms, l.error, l.trace_id,
       CASE WHEN s.output IS NOT NULL AND NOT coalesce(l.details ? 'payload', false)
            THEN coalesce(l.details, '{}'::jsonb) || jsonb_build_object('payload', s.output)
            ELSE l.details END AS details
FROM processing_logs l
LEFT JOIN track_steps s
       ON l.event_type = 'completed' AND s.correlation_id = l.correlation_id AND s.track_id = l.track_id
      AND s.correlation_id = $1 AND s.status = 'completed'
WHERE l.correlation_id = $1
ORDER BY l.occurred_at, l.id
"""


def _usual_subject(track: str, correlation_id: str, source: str | None) -> str:
    """The subject a step's activation usually arrives on: its upstream's completion event, or
    its own run subject for a direct trigger."""
    if source is not None:
        return names.event(source, SubjectKind.COMPLETED, correlation_id)
    return names.run(track, correlation_id)


def started_details(
    track: str, correlation_id: str, subject: str, source: str | None, payload: Any
) -> dict[str, Any]:
    """A ``started`` row's details: the activation's ``source`` (an upstream; left out for a direct
    trigger), ``payload``, and ``subject`` only when it is not the usual one (which repeats the
    row's correlation ID and track): :func:`execution_chain` restores both as they were."""
    details: dict[str, Any] = {"payload": payload}
    if source is not None:
        details["source"] = source
    if subject != _usual_subject(track, correlation_id, source):
        details["subject"] = subject
    return details


def _restored(event_type: str, track: str, correlation_id: str, details: Any) -> Any:
    """A ``started``/``gated`` row's details as :func:`started_details` was given them."""
    if event_type not in ("started", "gated") or not isinstance(details, dict) or "subject" in details:
        return details
    source = details.get("source")
    return {"subject": _usual_subject(track, correlation_id, source), "source": source, **details}


async def execution_chain(pool: asyncpg.Pool, correlation_id: str) -> list[ChainEvent]:
    rows = await pool.fetch(_CHAIN_SQL, correlation_id)
    return [
        ChainEvent(
            r["occurred_at"],
            r["track_id"],
            r["event_type"],
            r["attempt"],
            r["duration_ms"],
            r["error"],
            r["trace_id"],
            _restored(r["event_type"], r["track_id"], correlation_id, r["details"]),
        )
        for r in rows
    ]


async def step_summaries(pool: asyncpg.Pool, correlation_id: str) -> list[StepSummary]:
    rows = await pool.fetch(
        """SELECT track_id, status, attempts, started_at, finished_at, error FROM track_steps
           WHERE correlation_id = $1 ORDER BY started_at""",
        correlation_id,
    )
    return [
        StepSummary(r["track_id"], r["status"], r["attempts"], r["started_at"], r["finished_at"], r["error"])
        for r in rows
    ]
