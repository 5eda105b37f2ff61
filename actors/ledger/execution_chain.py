"""A run's execution chain, rebuilt from ``processing_logs`` and ``track_steps``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["ChainEvent", "StepSummary", "execution_chain", "step_summaries"]


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


async def execution_chain(pool: asyncpg.Pool, correlation_id: str) -> list[ChainEvent]:
    rows = await pool.fetch(
        """SELECT occurred_at, track_id, event_type, attempt, duration_ms, error, trace_id, details
           FROM processing_logs WHERE correlation_id = $1 ORDER BY occurred_at, id""",
        correlation_id,
    )
    return [
        ChainEvent(
            r["occurred_at"],
            r["track_id"],
            r["event_type"],
            r["attempt"],
            r["duration_ms"],
            r["error"],
            r["trace_id"],
            r["details"],
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
