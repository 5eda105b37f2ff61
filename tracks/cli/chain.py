"""``tracks chain CID``: a run's records as a timeline."""

from __future__ import annotations

import json

import click

from actors.ledger.execution_chain import execution_chain, step_summaries
from tracks.cli._common import UserError, async_command, get_settings
from tracks.cli._connect import pool_session

__all__ = ["chain"]


@click.command()
@click.argument("correlation_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@async_command
async def chain(correlation_id: str, as_json: bool) -> None:
    """Print what happened to one run: every track event in order, then each step's status."""
    async with pool_session(get_settings()) as pool:
        events = await execution_chain(pool, correlation_id)
        steps = await step_summaries(pool, correlation_id)
    if not events:
        raise UserError(f"no records for correlation ID {correlation_id}")
    if as_json:
        click.echo(
            json.dumps(
                {"events": [e.__dict__ for e in events], "steps": [s.__dict__ for s in steps]},
                default=str,
                indent=2,
            )
        )
        return
    t0 = events[0].occurred_at
    for e in events:
        offset = (e.occurred_at - t0).total_seconds() * 1000
        took = f" {e.duration_ms:.1f}ms" if e.duration_ms is not None else ""
        err = f"  error: {e.error}" if e.error else ""
        click.echo(f"+{offset:9.1f}ms  {e.track:24} {e.event_type:10} attempt {e.attempt}{took}{err}")
    click.echo("")
    for s in steps:
        took = f"{(s.finished_at - s.started_at).total_seconds() * 1000:.1f}ms" if s.finished_at else "-"
        click.echo(
            f"{s.track:24} {s.status:10} attempts={s.attempts} took={took}"
            + (f"  {s.error}" if s.error else "")
        )
