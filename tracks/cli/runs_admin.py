"""Operating runs: ``tracks runs ls``, ``tracks runs show CID`` and ``tracks cancel CID``.

None of them starts the embedded servers. ``runs ls`` and ``runs show`` read PostgreSQL only
(never NATS); ``cancel`` needs both (it publishes the run's event). The queries live in
:mod:`actors.ledger.listing`, this module only parses options and formats.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import click

from actors.ledger.listing import MAX_LIMIT, RunDetail, RunSummary, iso, list_runs, show_run
from actors.ledger.progress import ProgressError
from subjects import STREAM
from tracks.cli._common import UserError, async_command, get_settings
from tracks.cli._connect import nats_session, pool_session

__all__ = ["cancel_cmd", "parse_since", "runs"]

STATUSES = ("running", "completed", "failed", "timed_out", "cancelled")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO-8601 time (UTC when it names no zone) or a duration back from now
    (``90s``, ``30m``, ``2h``, ``3d``, ``1w``)."""
    text = value.strip()
    if m := _DURATION.match(text):
        return (now or datetime.now(UTC)) - timedelta(seconds=float(m[1]) * _UNITS[m[2]])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--since {value!r} is neither an ISO-8601 time (2026-11-27T08:00:00Z) nor a duration "
            "(90s, 30m, 2h, 3d, 1w)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@click.group()
def runs() -> None:
    """Find workflow runs and look into one (PostgreSQL only)."""


@runs.command("ls")
@click.option(
    "--status",
    type=click.Choice(STATUSES, case_sensitive=False),
    default=None,
    help="Only runs with this status.",
)
@click.option("--workflow", default=None, help="Only runs of this workflow.")
@click.option(
    "--since",
    default=None,
    metavar="TIME|DURATION",
    help="Only runs started at or after this ISO-8601 time, or this long ago (30m, 2h, 3d).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="At most this many runs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array (camelCase keys, times in UTC).")
@async_command
async def runs_ls(
    status: str | None, workflow: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """List workflow runs, newest first: correlation ID, workflow, status, start and finish (UTC)."""
    after = parse_since(since) if since else None
    async with pool_session(get_settings(), max_size=1) as pool:  # PostgreSQL only: never NATS
        found = await list_runs(pool, status=status, workflow=workflow, since=after, limit=limit)
    if as_json:
        click.echo(json.dumps([r.as_wire() for r in found], indent=2))
        return
    if not found:
        click.echo("no runs match", err=True)
        return
    _table(found)


def _table(found: list[RunSummary]) -> None:
    header = ("CORRELATION ID", "WORKFLOW", "STATUS", "STARTED (UTC)", "FINISHED (UTC)", "DURATION")
    rows = [
        (
            r.correlation_id,
            r.workflow,
            r.status,
            iso(r.started_at) or "-",
            iso(r.finished_at) or "-",
            f"{r.duration_s:.1f}s" if r.duration_s is not None else "-",
        )
        for r in found
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@runs.command("show")
@click.argument("correlation_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (camelCase keys).")
@async_command
async def runs_show(correlation_id: str, as_json: bool) -> None:
    """One run: its status and times, its phases, and each step's status, attempts, times and error."""
    async with pool_session(get_settings()) as pool:  # PostgreSQL only: never NATS
        detail = await show_run(pool, correlation_id)
    if detail is None:
        raise UserError(f"no workflow run with correlation ID {correlation_id} (see `tracks runs ls`)")
    if as_json:
        click.echo(json.dumps(detail.as_wire(), indent=2))
        return
    _show(detail)


def _show(detail: RunDetail) -> None:
    r = detail.run
    click.echo(f"run       {r.correlation_id}")
    click.echo(f"workflow  {r.workflow}")
    click.echo(f"status    {r.status}")
    click.echo(f"started   {iso(r.started_at)}")
    click.echo(f"finished  {iso(r.finished_at) or '-'}")
    if r.deadline is not None:
        click.echo(f"deadline  {iso(r.deadline)}")
    if r.error:
        click.echo(f"error     {r.error}")
    steps = {s.track: s for s in detail.steps}
    width = max((len(t) for p in detail.phases for t in p["tracks"]), default=5)
    for phase in detail.phases:
        flags = [f for f, on in (("manual", phase["manual"]), ("completed", phase["completed"])) if on]
        click.echo(f"phase {phase['name']}" + (f"  [{', '.join(flags)}]" if flags else ""))
        for track in phase["tracks"]:
            s = steps.pop(track, None)
            if s is None:
                click.echo(f"  {track.ljust(width)}  not started")
                continue
            click.echo(
                f"  {track.ljust(width)}  {s.status:9}  attempts {s.attempts}  "
                f"{iso(s.started_at)} → {iso(s.finished_at) or '-'}"
                + (f"  error: {s.error}" if s.error else "")
            )
    for s in steps.values():  # steps outside the stored definition (a track triggered on its own)
        click.echo(
            f"  {s.track}  {s.status}  attempts {s.attempts}" + (f"  error: {s.error}" if s.error else "")
        )


@click.command("cancel")
@click.argument("correlation_id")
@click.option("--reason", default=None, help="Why; recorded with the run and sent in its cancelled event.")
@async_command
async def cancel_cmd(correlation_id: str, reason: str | None) -> None:
    """Cancel a running run: no further step starts, steps in flight see ctx.cancelled, and
    tracks.workflow.<wf>.cancelled.<cid> is published. Cancelling it again sends the announcement
    again (exit 0). A run that completed, failed or timed out is left as it is (exit 1); a
    cancelled run is not resumed."""
    from actors.ledger.cancel import cancel  # with the metrics it announces: not for ls/show
    from foundation.jetstream.publisher import EventPublisher

    settings = get_settings()
    async with pool_session(settings, max_size=1) as pool, nats_session(settings, streams=[STREAM]) as nc:
        try:
            done = await cancel(pool, EventPublisher(nc.jetstream()), correlation_id, reason)
        except ProgressError as exc:
            raise UserError(str(exc)) from None
    if done.already:
        click.echo(f"run {correlation_id} was already cancelled; its cancellation was announced again")
    else:
        click.echo(f"cancelled run {correlation_id} (workflow {done.workflow})")
