"""Finding runs: the newest runs matching a filter (``tracks runs ls``), and one run in full
(``tracks runs show``). PostgreSQL only: no NATS, no workflow code.

The listing reads newest first by ``(started_at, correlation_id)`` with a ``LIMIT``, each filter
from an index in that order (migration 0008), so its cost depends on the page, not on how many
runs the table holds. ``before`` continues a listing after the last run of a page (keyset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from actors.ledger.progress import DEFINITION, DEFINITION_JOIN, Progress, ProgressError, progress

__all__ = ["MAX_LIMIT", "RunDetail", "RunSummary", "StepDetail", "iso", "list_runs", "show_run"]

MAX_LIMIT = 10_000
"""At most this many runs in one page."""

_COLUMNS = "correlation_id, workflow, status, user_id, error, started_at, finished_at, deadline"


def iso(value: datetime | None) -> str | None:
    """A time as ISO-8601 in UTC, to the millisecond: ``2026-11-27T19:38:59.123Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RunSummary:
    correlation_id: str
    workflow: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    user_id: str | None = None
    error: str | None = None
    deadline: datetime | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> RunSummary:
        return cls(
            row["correlation_id"],
            row["workflow"],
            row["status"],
            row["started_at"],
            row["finished_at"],
            row["user_id"],
            row["error"],
            row["deadline"],
        )

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def as_wire(self) -> dict[str, Any]:
        """camelCase, as ``tracks status --json`` and the request API spell their keys."""
        return {
            "correlationId": self.correlation_id,
            "workflow": self.workflow,
            "status": self.status,
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "durationS": self.duration_s,
            "userId": self.user_id,
            "error": self.error,
        }


@dataclass(frozen=True)
class StepDetail:
    track: str
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    error: str | None

    def as_wire(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "status": self.status,
            "attempts": self.attempts,
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "error": self.error,
        }


@dataclass(frozen=True)
class RunDetail:
    run: RunSummary
    progress: Progress | None
    """Phases as ``tracks status`` computes them; ``None`` for a run stored without its definition."""
    phases: list[dict[str, Any]] = field(default_factory=list)
    """Each phase: name, manual, tracks, and whether it completed."""
    steps: list[StepDetail] = field(default_factory=list)

    def as_wire(self) -> dict[str, Any]:
        wire = self.run.as_wire()
        wire["deadline"] = iso(self.run.deadline)
        p = self.progress
        wire.update(
            {
                "currentPhase": p.current_phase if p else None,
                "currentStep": p.current_step if p else None,
                "completedPhases": p.completed_phases if p else [],
                "canProceed": p.can_proceed if p else False,
                "requiresManualTrigger": p.requires_manual_trigger if p else False,
                "phases": self.phases,
                "steps": [s.as_wire() for s in self.steps],
            }
        )
        return wire


async def list_runs(
    pool: asyncpg.Pool,
    *,
    status: str | None = None,
    workflow: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    before: tuple[datetime, str] | None = None,
) -> list[RunSummary]:
    """The newest runs (by start time) matching every filter given; at most ``limit``.

    ``before``: the ``(started_at, correlation_id)`` of the last run of the previous page.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if status is not None:  # lower(status): the index's expression (see migration 0008)
        where.append(f"lower(status) = lower({arg(status)})")
    if workflow is not None:
        where.append(f"workflow = {arg(workflow)}")
    if since is not None:
        where.append(f"started_at >= {arg(since)}")
    if before is not None:
        where.append(f"(started_at, correlation_id) < ({arg(before[0])}, {arg(before[1])})")
    sql = (
        f"SELECT {_COLUMNS} FROM workflow_runs"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY started_at DESC, correlation_id DESC LIMIT {arg(limit)}"
    )
    return [RunSummary.of(r) for r in await pool.fetch(sql, *args)]


async def show_run(pool: asyncpg.Pool, correlation_id: str) -> RunDetail | None:
    """One run with its phases and steps; ``None`` when no run has that correlation ID."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS}, {DEFINITION} FROM workflow_runs w {DEFINITION_JOIN} WHERE correlation_id = $1",
        correlation_id,
    )
    if row is None:
        return None
    steps = [
        StepDetail(r["track_id"], r["status"], r["attempts"], r["started_at"], r["finished_at"], r["error"])
        for r in await pool.fetch(
            """SELECT track_id, status, attempts, started_at, finished_at, error
               FROM track_steps WHERE correlation_id = $1 ORDER BY started_at, track_id""",
            correlation_id,
        )
    ]
    try:
        state: Progress | None = await progress(pool, correlation_id)
    except ProgressError:  # stored without a definition (refused before it began)
        state = None
    definition = row["definition"] or {}
    phases = definition.get("phases") or (
        [{"name": "main", "tracks": list(definition["tracks"]), "manual": False}]
        if definition.get("tracks")
        else []
    )
    done = set(state.completed_phases) if state else set()
    order = _upstream_first(definition.get("tracks") or {})
    return RunDetail(
        RunSummary.of(row),
        state,
        [
            {
                "name": p["name"],
                "manual": p["manual"],
                "tracks": sorted(p["tracks"], key=lambda t: order.get(t, len(order))),
                "completed": p["name"] in done,
            }
            for p in phases
        ],
        steps,
    )


def _upstream_first(graph: dict[str, list[str]]) -> dict[str, int]:
    """Each track's place when every track comes after its upstreams (ties by name): the stored
    definition is a JSON object, whose keys PostgreSQL keeps in its own order."""
    placed: dict[str, int] = {}
    left = dict(graph)
    while left:
        ready = sorted(t for t, ups in left.items() if all(u in placed or u not in graph for u in ups))
        if not ready:  # a cycle cannot be stored (workflows refuse them); place the rest by name
            ready = sorted(left)
        for t in ready:
            placed[t] = len(placed)
            del left[t]
    return placed
