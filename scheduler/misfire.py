"""Missed ticks: which ones still fire and which are skipped — pure functions, no clock of their own.

After downtime the missed ticks are those between the last recorded tick of a schedule (from
``job_executions``, so this works across restarts and replicas) and now. Policy ``coalesce``:
ticks no older than the grace window fire *once* (the latest; the others are recorded as
``coalesced``), older ones are skipped (``misfire``). Policy ``skip``: all are skipped. At most
``cap`` old ticks get a row each (the oldest); the last of them says until when more ticks were
skipped without a row — after a long outage of a seconds-level schedule, neither the database
nor the start-up time should grow with the length of the outage.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import islice

from scheduler.cron import CronExpression

__all__ = ["MisfirePlan", "MisfirePolicy", "Skip", "plan_catch_up", "plan_due"]

_TINY = timedelta(microseconds=1)


class MisfirePolicy(StrEnum):
    COALESCE = "coalesce"
    """Ticks missed within the grace window fire once (the latest); older ones are skipped."""
    SKIP = "skip"
    """Every missed tick is skipped (and recorded); the schedule resumes at its next tick."""


@dataclass(frozen=True)
class Skip:
    scheduled_for: datetime
    reason: str
    """``misfire`` (older than the grace window), ``coalesced`` (a later missed tick fired
    instead) or ``misfire_policy`` (the policy is ``skip``)."""
    skipped_until: datetime | None = None
    """Set on the last recorded tick when later ones, up to this time, got no row of their own."""


@dataclass(frozen=True)
class MisfirePlan:
    fire: datetime | None
    skips: tuple[Skip, ...]


def plan_due(run_times: list[datetime], now: datetime, grace_s: float) -> MisfirePlan:
    """Ticks APScheduler found due together (the loop was busy): the latest fires if within grace."""
    if not run_times:
        return MisfirePlan(None, ())
    *earlier, latest = sorted(run_times)
    skips = tuple(Skip(t, "coalesced") for t in earlier)
    if (now - latest).total_seconds() > grace_s:
        return MisfirePlan(None, (*skips, Skip(latest, "misfire")))
    return MisfirePlan(latest, skips)


def plan_catch_up(
    cron: CronExpression,
    tz: tzinfo,
    *,
    last: datetime,
    now: datetime,
    policy: MisfirePolicy,
    grace_s: float,
    cap: int,
) -> MisfirePlan:
    """The plan for ticks in ``(last, now]`` that nobody fired."""
    horizon = now - timedelta(seconds=grace_s)
    old: list[Skip] = []
    if last < horizon:
        old_ticks = cron.fire_times_between(last, horizon - _TINY, tz)
        old = [Skip(t, "misfire") for t in islice(old_ticks, cap)]
        if next(old_ticks, None) is not None:
            old[-1] = Skip(old[-1].scheduled_for, "misfire", skipped_until=horizon)
    recent = deque(cron.fire_times_between(max(last, horizon - _TINY), now, tz), maxlen=cap + 1)
    if policy is MisfirePolicy.SKIP or not recent:
        return MisfirePlan(None, (*old, *(Skip(t, "misfire_policy") for t in recent)))
    fire = recent.pop()
    return MisfirePlan(fire, (*old, *(Skip(t, "coalesced") for t in recent)))
