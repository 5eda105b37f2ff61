"""Where a run stands, releasing a manual gate, and resuming a failed or timed-out run.

All three work from the database alone: each run references its workflow's definition (tracks
and upstreams, phases, leaves; stored once in ``workflow_definitions``), so they need neither
the workflow's code nor a running actor.
Re-activation is always a run command on ``tracks.<track>.run.<cid>``: the ledger then skips
completed steps and recomputes a fan-in step's inputs, so the usual rules hold.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from subjects import headers, names

if TYPE_CHECKING:  # what reads progress (tracks status, runs ls) does not pay for the rest
    from foundation.jetstream.publisher import EventPublisher

__all__ = [
    "DEFINITION",
    "DEFINITION_JOIN",
    "Progress",
    "ProgressError",
    "ReActivated",
    "proceed",
    "progress",
    "resume",
]


DEFINITION = "coalesce(d.definition, w.definition, '{}'::jsonb) AS definition"
"""A run's definition, selected from ``workflow_runs w`` joined with :data:`DEFINITION_JOIN`: the
stored definition it references (migration 0014), else its own (a run written before)."""
DEFINITION_JOIN = "LEFT JOIN workflow_definitions d ON d.id = w.definition_id"


class ProgressError(ValueError):
    """The request does not fit the run's state (unknown run, nothing to release, ...)."""


@dataclass(frozen=True)
class Progress:
    correlation_id: str
    workflow: str
    status: str
    current_phase: str | None
    current_step: str | None
    completed_phases: list[str]
    can_proceed: bool
    requires_manual_trigger: bool
    steps: dict[str, str] = field(default_factory=dict)

    def as_wire(self) -> dict[str, Any]:
        return {
            "correlationId": self.correlation_id,
            "workflow": self.workflow,
            "status": self.status,
            "currentPhase": self.current_phase,
            "currentStep": self.current_step,
            "completedPhases": self.completed_phases,
            "canProceed": self.can_proceed,
            "requiresManualTrigger": self.requires_manual_trigger,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class ReActivated:
    correlation_id: str
    tracks: list[str]
    phase: str | None = None


async def progress(pool: asyncpg.Pool, correlation_id: str) -> Progress:
    run, steps = await _load(pool, correlation_id)
    definition = run["definition"]
    phases = definition.get("phases") or [
        {"name": "main", "tracks": list(definition["tracks"]), "manual": False}
    ]
    done = [p["name"] for p in phases if all(steps.get(t) == "completed" for t in p["tracks"])]
    current = next((p for p in phases if p["name"] not in done), None)
    released = set(run["released_phases"]) | (
        {p["name"] for p in phases} if definition.get("autoProceed") else set()
    )
    requires = bool(current and current["manual"] and current["name"] not in released)
    return Progress(
        correlation_id=correlation_id,
        workflow=run["workflow"],
        status=run["status"],
        current_phase=current["name"] if current else None,
        current_step=_current_step(current["tracks"], steps) if current else None,
        completed_phases=done,
        requires_manual_trigger=requires,
        can_proceed=requires and run["status"] == "running",
        steps=steps,
    )


async def proceed(pool: asyncpg.Pool, publisher: EventPublisher, correlation_id: str) -> ReActivated:
    """Release the current manual phase and re-activate the steps that wait at its gate."""
    state = await progress(pool, correlation_id)
    if not state.requires_manual_trigger:
        raise ProgressError(
            f"run {correlation_id} waits at no manual gate (current phase: "
            f"{state.current_phase or 'none, all phases completed'}, status: {state.status})"
        )
    if state.status == "cancelled":
        raise ProgressError(f"run {correlation_id} was cancelled; a cancelled run does not continue")
    if not state.can_proceed:
        raise ProgressError(f"run {correlation_id} is {state.status}; resume it before releasing a gate")
    phase = state.current_phase
    assert phase is not None
    stored = await pool.fetchval(
        "SELECT trace_context FROM workflow_runs WHERE correlation_id = $1", correlation_id
    )
    from foundation import telemetry  # OpenTelemetry: only what acts on a run pays for it

    with telemetry.continued(
        f"proceed {state.workflow}", stored, _attributes(state.workflow, correlation_id)
    ):
        return await _release(pool, publisher, state.workflow, correlation_id, phase)


async def _release(
    pool: asyncpg.Pool, publisher: EventPublisher, workflow: str, correlation_id: str, phase: str
) -> ReActivated:
    await pool.execute(
        """UPDATE workflow_runs SET released_phases = array_append(released_phases, $2), updated_at = now()
           WHERE correlation_id = $1 AND NOT ($2 = ANY (released_phases))""",
        correlation_id,
        phase,
    )
    gated = await pool.fetch(
        """SELECT DISTINCT ON (s.track_id) s.track_id, l.details -> 'payload' AS payload
           FROM track_steps s JOIN processing_logs l
             ON l.correlation_id = s.correlation_id AND l.track_id = s.track_id AND l.event_type = 'gated'
           WHERE s.correlation_id = $1 AND s.status = 'gated'
           ORDER BY s.track_id, l.id DESC""",
        correlation_id,
    )
    for row in gated:
        await _activate(
            publisher,
            workflow,
            correlation_id,
            row["track_id"],
            row["payload"] or {},
            f"proceed:{correlation_id}:{row['track_id']}:{phase}",
        )
    await _log(
        pool,
        correlation_id,
        workflow,
        "proceeded",
        {"phase": phase, "tracks": [r["track_id"] for r in gated]},
    )
    return ReActivated(correlation_id, [r["track_id"] for r in gated], phase)


async def resume(pool: asyncpg.Pool, publisher: EventPublisher, correlation_id: str) -> ReActivated:
    """Continue a failed or timed-out run from its last successful steps, with recorded payloads."""
    run, steps = await _load(pool, correlation_id)
    if run["status"] == "completed":
        raise ProgressError(f"run {correlation_id} already completed; nothing to resume")
    if run["status"] == "cancelled":  # final, as in Temporal: start a new run instead
        raise ProgressError(
            f"run {correlation_id} was cancelled; a cancelled run is not resumed (start a new run)"
        )
    definition = run["definition"]
    graph: dict[str, list[str]] = definition["tracks"]
    frontier = [
        t
        for t, ups in graph.items()
        if steps.get(t) not in ("completed", "gated") and all(steps.get(u) == "completed" for u in ups)
    ]
    if run["status"] == "running" and not any(steps.get(t) == "failed" for t in frontier):
        raise ProgressError(f"run {correlation_id} is running with no failed step; nothing to resume")
    from foundation import telemetry  # OpenTelemetry: only what acts on a run pays for it

    with telemetry.continued(
        f"resume {run['workflow']}", run["trace_context"], _attributes(run["workflow"], correlation_id)
    ):
        return await _resume(pool, publisher, correlation_id, run, steps, frontier)


async def _resume(
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    correlation_id: str,
    run: asyncpg.Record,
    steps: dict[str, str],
    frontier: list[str],
) -> ReActivated:
    definition = run["definition"]
    graph: dict[str, list[str]] = definition["tracks"]
    await pool.execute(
        """UPDATE workflow_runs SET status = 'running', error = NULL, finished_at = NULL, updated_at = now(),
                  deadline = CASE WHEN $2::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $2) END
           WHERE correlation_id = $1""",
        correlation_id,
        definition.get("timeoutS"),
    )
    outputs = {
        r["track_id"]: r["output"]
        for r in await pool.fetch(
            "SELECT track_id, output FROM track_steps WHERE correlation_id = $1 AND status = 'completed'",
            correlation_id,
        )
    }
    stamp = time.time_ns()
    for track in frontier:
        ups = graph[track]
        payload = run["input"] if not ups else outputs.get(ups[0]) if len(ups) == 1 else {}
        await _activate(
            publisher,
            run["workflow"],
            correlation_id,
            track,
            payload or {},
            f"resume:{correlation_id}:{track}:{stamp}",
        )
    await _log(pool, correlation_id, run["workflow"], "resumed", {"tracks": frontier, "from": run["status"]})
    # the dead letters of the steps resumed are settled by the resume: out of the DLQ, with a record
    from actors.failures.dlq_ops import resolve_run_letters
    from actors.ledger.store import Ledger

    ledger = Ledger(pool)
    ledger.start()
    try:
        await resolve_run_letters(publisher.jetstream, ledger, correlation_id, frontier, "resumed")
    finally:
        await ledger.close()
    return ReActivated(correlation_id, frontier)


async def _load(pool: asyncpg.Pool, correlation_id: str) -> tuple[asyncpg.Record, dict[str, str]]:
    run = await pool.fetchrow(
        f"SELECT workflow, status, input, released_phases, {DEFINITION}, trace_context "
        f"FROM workflow_runs w {DEFINITION_JOIN} WHERE correlation_id = $1",
        correlation_id,
    )
    if run is None:
        raise ProgressError(f"no workflow run with correlation ID {correlation_id}")
    if not run["definition"].get("tracks"):
        raise ProgressError(f"run {correlation_id} has no stored workflow definition")
    steps = {
        r["track_id"]: r["status"]
        for r in await pool.fetch(
            "SELECT track_id, status FROM track_steps WHERE correlation_id = $1", correlation_id
        )
    }
    return run, steps


def _attributes(workflow: str, correlation_id: str) -> dict[str, Any]:
    return {"tracks.workflow": workflow, "messaging.message.conversation_id": correlation_id}


def _current_step(tracks: list[str], steps: dict[str, str]) -> str | None:
    """The step of the phase that matters now: a failed one, else running, else gated, else next."""
    for wanted in ("failed", "running", "gated"):
        for t in tracks:
            if steps.get(t) == wanted:
                return t
    return next((t for t in tracks if t not in steps), None)


async def _activate(
    publisher: EventPublisher,
    workflow: str,
    correlation_id: str,
    track: str,
    payload: dict[str, Any],
    msg_id: str,
) -> None:
    from subjects.envelope import EventType, encode_event  # pydantic: not for what only reads

    body = encode_event(
        track,
        EventType.DATA_READY,
        payload,
        correlation_id=correlation_id,
        source_track="coordinator",
        target_tracks=[track],
        workflow=workflow,
    )
    await publisher.publish(names.run(track, correlation_id), body, {headers.MSG_ID: msg_id})


async def _log(
    pool: asyncpg.Pool, correlation_id: str, workflow: str, event: str, details: dict[str, Any]
) -> None:
    await pool.execute(
        """INSERT INTO processing_logs (correlation_id, track_id, event_type, attempt, details, occurred_at)
           VALUES ($1, $2, $3, 0, $4::text::jsonb, now())""",
        correlation_id,
        workflow,
        event,
        json.dumps(details),
    )
