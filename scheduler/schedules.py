"""Schedules in PostgreSQL (``job_schedules``): the model, validation, and the queries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from scheduler.cron import CronExpression
from subjects import check_token
from subjects.priority import Priority

__all__ = [
    "InvalidSchedule",
    "NewSchedule",
    "OverlapPolicy",
    "Schedule",
    "ScheduleExists",
    "ScheduleStore",
    "UnknownSchedule",
    "parse_timezone",
]

_COLUMNS = (
    "id, name, cron_expression, job_type, enabled, timezone, target, payload, priority, "
    "overlap_policy, timeout_s, misfire_grace_s, created_at, updated_at"
)


class OverlapPolicy(StrEnum):
    SKIP = "skip"
    """A tick while the previous run is unfinished is skipped (recorded)."""
    ALLOW = "allow"
    """Runs may overlap."""
    QUEUE = "queue"
    """One tick waits for the previous run and is published when it finishes; more are skipped."""


class UnknownSchedule(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")


class InvalidSchedule(ValueError):
    def __init__(self, name: str, why: str) -> None:
        self.name = name
        super().__init__(f"schedule {name!r} is invalid: {why}")


class ScheduleExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} already exists")


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone, or a ``ValueError`` that says which name was not found."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')") from None


@dataclass(frozen=True)
class Schedule:
    id: uuid.UUID
    name: str
    cron: CronExpression
    job_type: str
    enabled: bool
    timezone: str
    target: str
    payload: dict[str, Any]
    priority: Priority
    overlap_policy: OverlapPolicy
    timeout_s: float | None
    misfire_grace_s: float | None
    created_at: datetime
    updated_at: datetime

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @staticmethod
    def zone(name: str) -> tzinfo:
        return ZoneInfo(name)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Schedule:
        """A row as a schedule; :class:`InvalidSchedule` when its cron or zone (edited by SQL) is bad."""
        try:
            cron = CronExpression.parse(row["cron_expression"])
            parse_timezone(row["timezone"])
        except ValueError as exc:
            raise InvalidSchedule(row["name"], str(exc)) from None
        return cls(
            id=row["id"],
            name=row["name"],
            cron=cron,
            job_type=row["job_type"],
            enabled=row["enabled"],
            timezone=row["timezone"],
            target=row["target"],
            payload=row["payload"] or {},
            priority=Priority(row["priority"]),
            overlap_policy=OverlapPolicy(row["overlap_policy"]),
            timeout_s=row["timeout_s"],
            misfire_grace_s=row["misfire_grace_s"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def next_fire_times(self, after: datetime, count: int = 5) -> list[datetime]:
        return self.cron.next_fire_times(after, self.tz, count)


@dataclass(frozen=True)
class NewSchedule:
    """What ``tracks schedule add`` asks for; :meth:`validate` raises ``ValueError`` with a reason."""

    name: str
    cron_expression: str
    target: str
    job_type: str | None = None
    payload: dict[str, Any] | None = None
    timezone: str = "UTC"
    priority: Priority = Priority.NORMAL
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    enabled: bool = True
    timeout_s: float | None = None
    misfire_grace_s: float | None = None

    def validate(self) -> None:
        if not self.name or len(self.name) > 200 or any(c.isspace() or c == ":" for c in self.name):
            raise ValueError(f"schedule name {self.name!r} must be 1-200 characters without spaces or ':'")
        CronExpression.parse(self.cron_expression)
        parse_timezone(self.timezone)
        check_token(self.target, "target")


class ScheduleStore:
    """The queries on ``job_schedules``; every write fires the NOTIFY trigger of migration 0004."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, new: NewSchedule) -> Schedule:
        new.validate()
        try:
            row = await self._pool.fetchrow(
                f"""INSERT INTO job_schedules (name, cron_expression, job_type, enabled, timezone, target,
                                               payload, priority, overlap_policy, timeout_s, misfire_grace_s)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_COLUMNS}""",
                new.name, new.cron_expression, new.job_type or new.target, new.enabled, new.timezone,
                new.target, new.payload or {}, new.priority.value, new.overlap_policy.value, new.timeout_s,
                new.misfire_grace_s,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ScheduleExists(new.name) from None
        assert row is not None
        return Schedule.from_row(row)

    async def register(self, schedules: list[NewSchedule]) -> list[str]:
        """Insert those missing, by name; an existing row (maybe edited by a user) is left alone."""
        added: list[str] = []
        for new in schedules:
            new.validate()
            name = await self._pool.fetchval(
                """INSERT INTO job_schedules (name, cron_expression, job_type, timezone, target, priority)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING name""",
                new.name, new.cron_expression, new.job_type or new.target, new.timezone, new.target,
                new.priority.value,
            )  # fmt: skip
            if name is not None:
                added.append(name)
        return added

    async def get(self, name: str) -> Schedule:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM job_schedules WHERE name = $1", name)
        if row is None:
            raise UnknownSchedule(name)
        return Schedule.from_row(row)

    async def by_id(self, schedule_id: uuid.UUID) -> Schedule | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM job_schedules WHERE id = $1", schedule_id)
        return Schedule.from_row(row) if row is not None else None

    async def list_all(
        self,
        *,
        enabled_only: bool = False,
        prefix: str = "",
        on_invalid: Callable[[InvalidSchedule], None] | None = None,
    ) -> list[Schedule]:
        """Schedules by name; an invalid row raises, or with ``on_invalid`` is reported and left out."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM job_schedules
                WHERE (enabled OR NOT $1) AND starts_with(name, $2) ORDER BY name""",
            enabled_only,
            prefix,
        )
        schedules = []
        for row in rows:
            try:
                schedules.append(Schedule.from_row(row))
            except InvalidSchedule as exc:
                if on_invalid is None:
                    raise
                on_invalid(exc)
        return schedules

    async def set_enabled(self, name: str, enabled: bool) -> Schedule:
        row = await self._pool.fetchrow(
            f"UPDATE job_schedules SET enabled = $2 WHERE name = $1 RETURNING {_COLUMNS}", name, enabled
        )
        if row is None:
            raise UnknownSchedule(name)
        return Schedule.from_row(row)

    async def remove(self, name: str) -> None:
        if await self._pool.fetchval("DELETE FROM job_schedules WHERE name = $1 RETURNING id", name) is None:
            raise UnknownSchedule(name)
