"""``tracks chain CID``: a run's records as a timeline."""

from __future__ import annotations

import json

import click

from actors.ledger.execution_chain import ChainEvent, StepSummary, execution_chain, step_summaries
from actors.ledger.listing import iso
from tracks.cli._common import UserError, async_command, get_settings
from tracks.cli._connect import pool_session

__all__ = ["chain"]


@click.command()
@click.argument("correlation_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (camelCase keys, UTC times).")
@async_command
async def chain(correlation_id: str, as_json: bool) -> None:
    """Print what happened to one run: every track event in order, then each step's status."""
    async with pool_session(get_settings()) as pool:
        events = await execution_chain(pool, correlation_id)
        steps = await step_summaries(pool, correlation_id)
    if not events:
        raise UserError(f"no records for correlation ID {correlation_id}")
    if as_json:
        body = {
            "correlationId": correlation_id,
            "events": [_event(e) for e in events],
            "steps": [_step(s) for s in steps],
        }
        click.echo(json.dumps(body, default=str, indent=2))
        return
    t0 = events[0].occurred_at
    click.echo(f"{'OFFSET':>11}  {'TRACK':24} {'EVENT':10} DETAIL")
    for e in events:
        offset = (e.occurred_at - t0).total_seconds() * 1000
        took = f" {e.duration_ms:.1f}ms" if e.duration_ms is not None else ""
        err = f"  error: {e.error}" if e.error else ""
        click.echo(f"+{offset:9.1f}ms  {e.track:24} {e.event_type:10} attempt {e.attempt}{took}{err}")
    click.echo("")
    click.echo(f"{'TRACK':24} {'STATUS':10} DETAIL")
    for s in steps:
        took = f"{(s.finished_at - s.started_at).total_seconds() * 1000:.1f}ms" if s.finished_at else "-"
        click.echo(
            f"{s.track:24} {s.status:10} attempts={s.attempts} took={took}"
            + (f"  {s.error}" if s.error else "")
        )


def _event(e: ChainEvent) -> dict[str, object]:
    return {
        "occurredAt": iso(e.occurred_at),
        "track": e.track,
        "eventType": e.event_type,
        "attempt": e.attempt,
        "durationMs": e.duration_ms,
        "error": e.error,
        "traceId": e.trace_id,
        "details": e.details,
    }


def _step(s: StepSummary) -> dict[str, object]:
    return {
        "track": s.track,
        "status": s.status,
        "attempts": s.attempts,
        "startedAt": iso(s.started_at),
        "finishedAt": iso(s.finished_at),
        "error": s.error,
    }
