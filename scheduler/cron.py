"""Cron expressions as values: crontab(5) semantics, parsed once, with a pure ``next_after``.

Fields are ``minute hour day-of-month month day-of-week``; six fields put a *seconds* field
first (``sec min hour dom mon dow``, as Quartz and Spring do), which seconds-level tests and
benchmarks use. Within a field: ``*``, numbers, names (``jan``-``dec``, ``sun``-``sat``),
ranges ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (= ``a-max/n``).
Day-of-week 0 and 7 are both Sunday. ``L`` in day-of-month is the month's last day.
When day-of-month and day-of-week are both restricted (neither starts with ``*``), a day
matches when *either* does — crontab's OR rule, which APScheduler's own trigger does not follow.
Macros: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``), ``@hourly``.

Time zones and DST (the policy): matching is done on the schedule's local wall clock, and each
matching wall-clock time fires at most once. A wall time that does not exist (the hour skipped
by spring-forward, e.g. 02:30 in America/New_York on the second Sunday of March) fires at the
instant the clock jumps (03:00 local), coalesced with any other tick at that instant. A wall
time that occurs twice (fall-back) fires only at its first occurrence, so nothing fires twice
and schedules restricted to the repeated hour run once; ticks of the second pass are skipped.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = ["CronError", "CronExpression"]

_MONTHS = {n: i for i, n in enumerate(calendar.month_abbr) if n}
_MONTH_NAMES = {k.lower(): v for k, v in _MONTHS.items()}
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_YEARS = 30
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


class CronError(ValueError):
    """An invalid expression; the message names the field and says what is wrong."""

    def __init__(self, text: str, field: str | None, why: str) -> None:
        self.text = text
        self.field = field
        self.why = why
        where = f"{field}: " if field else ""
        super().__init__(f"invalid cron expression {text!r}: {where}{why}")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_SECONDS = _Field("second", 0, 59, {})
_MINUTES = _Field("minute", 0, 59, {})
_HOURS = _Field("hour", 0, 23, {})
_DOM = _Field("day-of-month", 1, 31, {})
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DOW = _Field("day-of-week", 0, 7, _DAY_NAMES)


def _value(text: str, spec: _Field, token: str) -> int:
    lowered = token.lower()
    if lowered in spec.names:
        return spec.names[lowered]
    if not token.isdigit():
        allowed = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise CronError(text, spec.name, f"{token!r} is not a number{allowed}")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise CronError(text, spec.name, f"{value} is out of range {spec.low}-{spec.high}")
    return value


def _element(text: str, spec: _Field, part: str) -> set[int]:
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(text, spec.name, f"step {step_text!r} in {part!r} must be a positive number")
        step = int(step_text)
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(text, spec, first), _value(text, spec, last)
        if low > high:
            raise CronError(text, spec.name, f"range {part!r} runs backwards ({low} > {high})")
    else:
        low = _value(text, spec, base)
        high = spec.high if slash else low
    return set(range(low, high + 1, step))


def _parse_field(text: str, spec: _Field, field: str) -> tuple[set[int], bool]:
    """The values of one field, and whether it holds ``L`` (day-of-month only)."""
    values: set[int] = set()
    last = False
    for part in field.split(","):
        if not part:
            raise CronError(text, spec.name, f"empty list element in {field!r}")
        if part.upper() == "L" and spec is _DOM:
            last = True
            continue
        values |= _element(text, spec, part)
    return values, last


@dataclass(frozen=True)
class CronExpression:
    """A parsed crontab(5) expression. Build it with :meth:`parse`; it is hashable and immutable."""

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    last_day: bool
    months: tuple[int, ...]
    weekdays: frozenset[int]
    """Sunday is 0."""
    day_restricted: bool
    """Day-of-month does not start with ``*``; with :attr:`weekday_restricted` this selects the OR rule
    (cronie's ``DOM_STAR``: ``*/2`` counts as unrestricted, so it is ANDed with day-of-week)."""
    weekday_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        source = text
        stripped = text.strip()
        if stripped.startswith("@"):
            if stripped.lower() not in _MACROS:
                why = (
                    "@reboot has no meaning for a scheduler"
                    if stripped.lower() == "@reboot"
                    else (f"unknown macro; use one of {', '.join(_MACROS)}")
                )
                raise CronError(source, None, why)
            stripped = _MACROS[stripped.lower()]
        fields = stripped.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        elif len(fields) != 6:
            raise CronError(
                source,
                None,
                f"expected 5 fields (minute hour day-of-month month day-of-week) "
                f"or 6 with seconds first, got {len(fields)}",
            )
        seconds, _ = _parse_field(source, _SECONDS, fields[0])
        minutes, _ = _parse_field(source, _MINUTES, fields[1])
        hours, _ = _parse_field(source, _HOURS, fields[2])
        days, last = _parse_field(source, _DOM, fields[3])
        months, _ = _parse_field(source, _MONTH, fields[4])
        weekdays, _ = _parse_field(source, _DOW, fields[5])
        expr = cls(
            text=source,
            seconds=tuple(sorted(seconds)),
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=frozenset(days),
            last_day=last,
            months=tuple(sorted(months)),
            weekdays=frozenset(d % 7 for d in weekdays),
            day_restricted=not fields[3].startswith("*"),
            weekday_restricted=not fields[5].startswith("*"),
        )
        expr._check_satisfiable()
        return expr

    def _check_satisfiable(self) -> None:
        if not self.day_restricted or self.weekday_restricted or self.last_day:
            return
        longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in self.months}
        if not any(d <= longest[m] for m in self.months for d in self.days):
            raise CronError(self.text, "day-of-month", "no listed day occurs in any listed month")

    # --- matching ---------------------------------------------------------------------------

    def day_matches(self, year: int, month: int, day: int) -> bool:
        """Whether a calendar date matches the day fields, with crontab's OR rule."""
        weekday = (calendar.weekday(year, month, day) + 1) % 7
        in_month = day in self.days or (self.last_day and day == calendar.monthrange(year, month)[1])
        in_week = weekday in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_wall_time(self, start: datetime) -> datetime:
        """The first naive wall-clock time at or after ``start`` (whole seconds) that matches."""
        t = start.replace(microsecond=0) if start.microsecond == 0 else start.replace(microsecond=0) + _SECOND
        limit = t.year + _MAX_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = self._next_month(t)
            elif not self.day_matches(t.year, t.month, t.day):
                t = _midnight(t) + _DAY
            elif t.hour not in self.hours:
                h = _next_in(self.hours, t.hour)
                t = t.replace(hour=h, minute=0, second=0) if h is not None else _midnight(t) + _DAY
            elif t.minute not in self.minutes:
                m = _next_in(self.minutes, t.minute)
                t = t.replace(minute=m, second=0) if m is not None else _hour(t) + _HOUR
            elif t.second not in self.seconds:
                s = _next_in(self.seconds, t.second)
                t = t.replace(second=s) if s is not None else t.replace(second=0) + _MINUTE
            else:
                return t
        raise CronError(self.text, None, f"no fire time within {_MAX_YEARS} years of {start:%Y-%m-%d}")

    def _next_month(self, t: datetime) -> datetime:
        i = bisect_left(self.months, t.month + 1)
        if i < len(self.months):
            return datetime(t.year, self.months[i], 1)
        return datetime(t.year + 1, self.months[0], 1)

    # --- instants ---------------------------------------------------------------------------

    def next_after(self, after: datetime, tz: tzinfo = UTC) -> datetime:
        """The first fire instant strictly after ``after`` (aware), as an aware time in ``tz``."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        after_utc = after.astimezone(UTC)
        wall = after_utc.astimezone(tz).replace(tzinfo=None, microsecond=0) + _SECOND
        while True:
            candidate = self.next_wall_time(wall)
            instant = _resolve(candidate, tz)
            if instant > after_utc:
                return instant.astimezone(tz)
            wall = candidate + _SECOND

    def next_fire_times(self, after: datetime, tz: tzinfo = UTC, count: int = 5) -> list[datetime]:
        times: list[datetime] = []
        current = after
        for _ in range(count):
            current = self.next_after(current, tz)
            times.append(current)
        return times

    def fire_times_between(self, after: datetime, until: datetime, tz: tzinfo = UTC) -> Iterator[datetime]:
        """Fire instants in ``(after, until]``, oldest first."""
        current = self.next_after(after, tz)
        while current <= until:
            yield current
            current = self.next_after(current, tz)

    def __str__(self) -> str:
        return self.text


def _next_in(allowed: tuple[int, ...], current: int) -> int | None:
    i = bisect_left(allowed, current + 1)
    return allowed[i] if i < len(allowed) else None


def _midnight(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day)


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0)


def _resolve(wall: datetime, tz: tzinfo) -> datetime:
    """A wall-clock time in ``tz`` as a UTC instant: ambiguous → first occurrence, missing → the jump."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = min(first, other), max(first, other)
    before = low.astimezone(tz).utcoffset()
    while high - low > _SECOND:
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(tz).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high
