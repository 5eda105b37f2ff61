"""``tracks schedule ...`` manages cron schedules live; ``tracks scheduler run | bench`` is the process.

Running schedulers pick up every ``schedule`` change within a second (PostgreSQL LISTEN/NOTIFY).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import click

from actors.ledger.listing import iso
from scheduler.executions import ExecutionStore
from scheduler.schedules import (
    InvalidSchedule,
    NewSchedule,
    OverlapPolicy,
    Schedule,
    ScheduleExists,
    ScheduleStore,
    UnknownSchedule,
)
from scheduler.targets import consumed, consuming_tracks, unconsumed_warning
from subjects import STREAM
from subjects.priority import Priority
from tracks.cli._common import (
    NotSetUp,
    UserError,
    async_command,
    get_settings,
    parse_json_object,
    resolve_workflow,
)
from tracks.cli._connect import open_nats, pool_session
from tracks.endpoints import NoServers

__all__ = ["schedule"]


@asynccontextmanager
async def _store() -> AsyncIterator[tuple[ScheduleStore, ExecutionStore]]:
    async with pool_session(get_settings()) as pool:
        try:
            yield ScheduleStore(pool), ExecutionStore(pool, instance="cli")
        except asyncpg.UndefinedTableError:
            raise NotSetUp("the schedule tables do not exist; run `tracks db migrate` first") from None
        except (UnknownSchedule, ScheduleExists, InvalidSchedule) as exc:
            raise UserError(str(exc)) from None


async def _consuming_tracks() -> set[str] | None:
    """The tracks some durable consumer serves (:mod:`scheduler.targets`); ``None`` when NATS
    cannot tell (unreachable, or no TRACKS stream yet: then nothing consumes anything)."""
    settings = get_settings()
    try:
        nc = await open_nats(settings, streams=[STREAM])
    except NotSetUp:
        return set()
    except (UserError, NoServers) as exc:  # PostgreSQL alone still lists and adds schedules
        why = exc.format_message() if isinstance(exc, UserError) else str(exc)
        click.echo(f"warning: cannot tell which targets are consumed: {why}", err=True)
        return None
    try:
        return await consuming_tracks(nc.jetstream(timeout=settings.connect_timeout_s))
    finally:
        await nc.close()


def _when(moment: datetime | None, tz: str = "UTC") -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(Schedule.zone(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


@click.group()
def schedule() -> None:
    """Cron schedules in PostgreSQL (crontab(5) syntax; 6 fields = seconds first)."""


@schedule.command("add")
@click.argument("name")
@click.argument("cron")
@click.option("--target", required=True, help="Track to run (tracks.<target>.run.<cid>).")
@click.option("--job-type", help="Job type recorded with each run (default: the target).")
@click.option("--payload", default="{}", help="JSON object: the run's payload.")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone of the cron fields.")
@click.option(
    "--priority",
    type=click.Choice([p.value for p in Priority]),
    default="normal",
    show_default=True,
    help="Tracks-Priority of each tick's run, carried downstream (high: the target's urgent lane).",
)
@click.option(
    "--overlap",
    type=click.Choice([p.value for p in OverlapPolicy]),
    default="skip",
    show_default=True,
    help="While the previous run is unfinished: skip the tick, allow overlap, or queue one.",
)
@click.option(
    "--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), help="Run timeout in seconds."
)
@click.option(
    "--misfire-grace",
    "misfire_grace_s",
    type=click.FloatRange(min=0),
    help="How late a tick missed during downtime may still fire, in seconds (default: the scheduler's).",
)
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option(
    "--module",
    "modules",
    multiple=True,
    metavar="MODULE[:NAME]",
    help="A workflow module whose tracks count as consumers of the target (repeatable).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse (exit 1) when no workflow or track consumes the target; without it: a warning.",
)
@async_command
async def add_cmd(
    name: str,
    cron: str,
    target: str,
    job_type: str | None,
    payload: str,
    timezone: str,
    priority: str,
    overlap: str,
    timeout_s: float | None,
    misfire_grace_s: float | None,
    disabled: bool,
    modules: tuple[str, ...],
    strict: bool,
) -> None:
    """Add schedule NAME firing on CRON (quote it: '0 8 * * 1-5').

    Warns when no workflow or track consumes the target (no durable consumer on TRACKS filters
    tracks.<target>.run, and no --module declares it); --strict refuses instead."""
    new = NewSchedule(
        name=name,
        cron_expression=cron,
        target=target,
        job_type=job_type,
        payload=parse_json_object(payload),
        timezone=timezone,
        priority=Priority(priority),
        overlap_policy=OverlapPolicy(overlap),
        enabled=not disabled,
        timeout_s=timeout_s,
        misfire_grace_s=misfire_grace_s,
    )
    try:
        new.validate()
    except ValueError as exc:  # CronError included: it names the bad field
        raise UserError(str(exc)) from None
    declared = [t.name for m in modules for t in resolve_workflow(m)]
    tracks = set(declared) if target in declared else await _consuming_tracks()
    unconsumed = tracks is not None and not consumed(target, tracks)
    if strict and (unconsumed or tracks is None):
        why = (
            f"no workflow or track consumes {target!r}"
            if unconsumed
            else f"cannot tell whether anything consumes {target!r}"
        )
        raise UserError(
            f"schedule {name!r} not added: {why} (--strict); start its actor first, "
            "name its workflow with --module, or drop --strict"
        )
    async with _store() as (store, _):
        added = await store.add(new)
    if unconsumed:
        click.echo(f"warning: {unconsumed_warning(target)}", err=True)
    nxt = added.next_fire_times(datetime.now(UTC), 1)[0]
    click.echo(f"added {added.name}: {cron} ({timezone}) -> {target}; next {_when(nxt, added.timezone)}")


@schedule.command("ls")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (camelCase keys, UTC times).")
@async_command
async def ls_cmd(as_json: bool) -> None:
    """List schedules with their next fire time."""
    async with _store() as (store, _):
        rows = await store.list_all(on_invalid=lambda exc: click.echo(f"warning: {exc}", err=True))
    tracks = await _consuming_tracks() if rows else set()
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps([_schedule_wire(s, now, tracks) for s in rows], indent=2))
        return
    if not rows:
        click.echo("no schedules", err=True)
        return
    header = (
        f"{'NAME':24} {'CRON':18} {'TZ':16} {'TARGET':18} {'ON':3} {'PRIO':6} {'OVERLAP':7} "
        f"{'CONSUMED':8} NEXT"
    )
    click.echo(header)
    for s in rows:
        nxt = _when(s.next_fire_times(now, 1)[0], s.timezone) if s.enabled else "-"
        taken = "?" if tracks is None else "yes" if consumed(s.target, tracks) else "NO"
        click.echo(
            f"{s.name:24} {s.cron.text:18} {s.timezone:16} {s.target:18} {'yes' if s.enabled else 'no':3} "
            f"{s.priority.value:6} {s.overlap_policy.value:7} {taken:8} {nxt}"
        )


@schedule.command("enable")
@click.argument("name")
@async_command
async def enable_cmd(name: str) -> None:
    """Enable NAME (running schedulers start firing it within a second)."""
    async with _store() as (store, _):
        await store.set_enabled(name, True)
    click.echo(f"enabled {name}")


@schedule.command("disable")
@click.argument("name")
@async_command
async def disable_cmd(name: str) -> None:
    """Disable NAME (running schedulers stop firing it within a second)."""
    async with _store() as (store, _):
        await store.set_enabled(name, False)
    click.echo(f"disabled {name}")


@schedule.command("rm")
@click.argument("name")
@async_command
async def rm_cmd(name: str) -> None:
    """Remove NAME; its execution history stays (detached)."""
    async with _store() as (store, _):
        await store.remove(name)
    click.echo(f"removed {name}")


@schedule.command("next")
@click.argument("name")
@click.option(
    "-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True, help="How many fire times."
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array (camelCase keys, UTC times).")
@async_command
async def next_cmd(name: str, count: int, as_json: bool) -> None:
    """The next fire times of NAME, in its time zone and in UTC."""
    async with _store() as (store, _):
        s = await store.get(name)
    moments = s.next_fire_times(datetime.now(UTC), count)
    if as_json:
        click.echo(json.dumps([iso(m) for m in moments], indent=2))
        return
    click.echo(f"{'LOCAL (' + s.timezone + ')':24}  (UTC)")
    for moment in moments:
        click.echo(f"{_when(moment, s.timezone)}  ({_when(moment)})")


@schedule.command("history")
@click.argument("name")
@click.option(
    "-n",
    "limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="Ticks shown, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array (camelCase keys, UTC times).")
@async_command
async def history_cmd(name: str, limit: int, as_json: bool) -> None:
    """The latest executions of NAME: status, times, errors."""
    async with _store() as (store, executions):
        s = await store.get(name)
        rows = await executions.history(s.id, limit)
    if as_json:
        click.echo(json.dumps([_execution_wire(r) for r in rows], indent=2, default=str))
        return
    if not rows:
        click.echo(f"no executions of {name} yet", err=True)
        return
    click.echo(f"{'SCHEDULED FOR':24} {'STATUS':9} {'DURATION':>9} {'CORRELATION':32} DETAIL")
    for r in rows:
        duration = (
            f"{(r['completed_at'] - r['started_at']).total_seconds():.1f}s"
            if r["completed_at"] is not None
            else "-"
        )
        detail = r["error_message"] or r["execution_metadata"].get("reason") or ""
        click.echo(
            f"{_when(r['scheduled_for'], s.timezone):24} {r['status']:9} {duration:>9} "
            f"{r['correlation_id'] or '-':32} {detail}"
        )


def _schedule_wire(s: Schedule, now: datetime, tracks: set[str] | None) -> dict[str, object]:
    return {
        "name": s.name,
        "cron": s.cron.text,
        "timezone": s.timezone,
        "target": s.target,
        "jobType": s.job_type,
        "enabled": s.enabled,
        "priority": s.priority.value,
        "overlapPolicy": s.overlap_policy.value,
        "consumed": None if tracks is None else consumed(s.target, tracks),
        "timeoutS": s.timeout_s,
        "misfireGraceS": s.misfire_grace_s,
        "payload": s.payload,
        "nextFireAt": iso(s.next_fire_times(now, 1)[0]) if s.enabled else None,
        "createdAt": iso(s.created_at),
        "updatedAt": iso(s.updated_at),
    }


def _execution_wire(r: asyncpg.Record) -> dict[str, object]:
    started, completed = r["started_at"], r["completed_at"]
    return {
        "scheduledFor": iso(r["scheduled_for"]),
        "status": r["status"],
        "startedAt": iso(started),
        "completedAt": iso(completed),
        "durationS": (completed - started).total_seconds() if started and completed else None,
        "correlationId": r["correlation_id"],
        "error": r["error_message"],
        "metadata": r["execution_metadata"],
    }
