"""CronExpression against croniter (the reference) and crontab(5), including DST."""

from __future__ import annotations

import calendar
import warnings
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.cron import CronError, CronExpression

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from croniter import croniter

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _reference(expr: str, start: datetime, count: int) -> list[datetime]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = croniter(expr, start)
        return [it.get_next(datetime) for _ in range(count)]


def _ours(expr: str, start: datetime, count: int) -> list[datetime]:
    times = CronExpression.parse(expr).next_fire_times(start.replace(tzinfo=UTC), UTC, count)
    return [t.replace(tzinfo=None) for t in times]


def _element(low: int, high: int, names: list[str] | None, star: bool) -> st.SearchStrategy[str]:
    def value(v: int) -> str:
        return names[v - low] if names and v - low < len(names) and v % 3 == 0 else str(v)

    number = st.integers(low, high)
    single = number.map(value)
    # croniter mishandles one-value ranges such as '2-2'; real ranges only.
    span = (
        st.tuples(number, number)
        .filter(lambda ab: ab[0] != ab[1])
        .map(lambda ab: f"{value(min(ab))}-{value(max(ab))}")
    )
    stepped = (
        st.tuples(number, number, st.integers(1, 7))
        .filter(lambda abs_: abs_[0] != abs_[1])
        .map(lambda abs_: f"{min(abs_[:2])}-{max(abs_[:2])}/{abs_[2]}")
    )
    options = [single, span, stepped]
    if star:
        options.append(st.integers(1, 9).map(lambda n: f"*/{n}"))
    return st.one_of(options)


def _field(
    low: int, high: int, names: list[str] | None = None, star_steps: bool = True
) -> st.SearchStrategy[str]:
    listed = st.lists(_element(low, high, names, star_steps), min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), listed)


# crontab(5)/cronie treat a day field that *starts* with '*' (e.g. '*/2') as unrestricted for the
# OR rule; croniter treats only a bare '*' so. Day fields here are '*' or start with a number.
expressions = st.tuples(
    _field(0, 59),
    _field(0, 23),
    st.one_of(_field(1, 28, star_steps=False), st.just("L")),
    _field(1, 12, [*MONTHS]),
    _field(0, 7, [*DAYS, "sun"], star_steps=False),
).map(" ".join)
starts = st.datetimes(datetime(2000, 1, 1), datetime(2040, 12, 31))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions, start=starts)
def test_matches_croniter(expr: str, start: datetime) -> None:
    start = start.replace(microsecond=0)
    assert _ours(expr, start, 5) == _reference(expr, start, 5), expr


@pytest.mark.parametrize(
    "expr",
    [
        "*/15 * * * *",
        "0 */6 * * *",
        "0 0 * * mon-fri",
        "0 9 1,15 * *",
        "0 0 L * *",
        "0 0 L 2 *",
        "0 12 * jan,jul sun",
        "5 4 * * 7",
        "0 0 13 * 5",
        "0 0 29 2 *",
        "59 23 31 dec *",
        "0 0 1 * 1",
    ],
)
def test_known_expressions_match_croniter(expr: str) -> None:
    start = datetime(2027, 11, 30, 12, 34, 56)
    assert _ours(expr, start, 24) == _reference(expr, start, 24)


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_macros(macro: str, expansion: str) -> None:
    start = datetime(2026, 5, 17, 8, 0)
    assert _ours(macro, start, 6) == _ours(expansion, start, 6) == _reference(expansion, start, 6)


STANDARD = {
    "0 8 * * 1-5": lambda t: t.weekday() < 5 and (t.hour, t.minute) == (8, 0),
    "0 23 * * *": lambda t: (t.hour, t.minute) == (23, 0),
    "0 2 * * 0": lambda t: t.weekday() == 6 and (t.hour, t.minute) == (2, 0),
    "0 1 L * *": lambda t: t.day == calendar.monthrange(t.year, t.month)[1] and (t.hour, t.minute) == (1, 0),
    "0 3 * * 1": lambda t: t.weekday() == 0 and (t.hour, t.minute) == (3, 0),
}


@pytest.mark.parametrize("expr", list(STANDARD))
def test_standard_schedules_over_a_leap_year(expr: str) -> None:
    """Every fire time of 2028 (a leap year), compared with a brute-force minute scan."""
    start = datetime(2028, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
    end = datetime(2029, 1, 1, tzinfo=UTC)
    ours = list(CronExpression.parse(expr).fire_times_between(start, end - timedelta(seconds=1)))
    brute = []
    t = start + timedelta(seconds=1)
    while t < end:
        if STANDARD[expr](t):
            brute.append(t)
        t += timedelta(minutes=1)
    assert ours == brute
    assert ours == [t.replace(tzinfo=UTC) for t in _reference(expr, start.replace(tzinfo=None), len(brute))]


def test_sunday_is_zero_and_seven_and_last_day_in_february_2028() -> None:
    sundays = CronExpression.parse("0 2 * * 0").next_fire_times(datetime(2028, 2, 1, tzinfo=UTC), count=4)
    assert [t.weekday() for t in sundays] == [6] * 4
    assert (
        CronExpression.parse("0 2 * * 7").next_fire_times(datetime(2028, 2, 1, tzinfo=UTC), count=4)
        == sundays
    )
    last = CronExpression.parse("0 1 L * *").next_fire_times(datetime(2028, 1, 15, tzinfo=UTC), count=3)
    assert [t.date().isoformat() for t in last] == ["2028-01-31", "2028-02-29", "2028-03-31"]
    feb_2027 = CronExpression.parse("0 1 L * *").next_after(datetime(2027, 2, 1, tzinfo=UTC))
    assert feb_2027.date().isoformat() == "2027-02-28"


def test_or_rule_when_both_day_fields_are_restricted() -> None:
    """Friday the 13th style: the 13th OR any Friday; APScheduler would AND them."""
    times = CronExpression.parse("0 0 13 * 5").next_fire_times(datetime(2026, 2, 1, tzinfo=UTC), count=5)
    assert [t.day for t in times] == [6, 13, 20, 27, 6]
    # A day field starting with '*' counts as unrestricted (cronie's DOM_STAR): AND, not OR.
    times = CronExpression.parse("0 0 */2 * 1").next_fire_times(datetime(2026, 1, 1, tzinfo=UTC), count=3)
    assert all(t.weekday() == 0 and t.day % 2 == 1 for t in times)


def test_seconds_field_comes_first() -> None:
    times = CronExpression.parse("*/20 * * * * *").next_fire_times(datetime(2026, 1, 1, tzinfo=UTC), count=4)
    assert [t.second for t in times] == [20, 40, 0, 20]


@pytest.mark.parametrize(("tz", "day"), [(NEW_YORK, datetime(2026, 3, 8)), (BERLIN, datetime(2026, 3, 29))])
def test_spring_forward_fires_the_missing_0230_once_at_the_jump(tz: ZoneInfo, day: datetime) -> None:
    expr = CronExpression.parse("30 2 * * *")
    before = day.replace(tzinfo=tz) - timedelta(days=1)
    times = expr.next_fire_times(before, tz, 3)
    assert [t.date() for t in times] == [(day + timedelta(days=d)).date() for d in (-1, 0, 1)]
    on_the_day = [t for t in times if t.date() == day.date()]
    assert len(on_the_day) == 1
    assert (on_the_day[0].hour, on_the_day[0].minute) == (3, 0)
    assert [(t.hour, t.minute) for t in times if t.date() != day.date()] == [(2, 30)] * 2


@pytest.mark.parametrize(("tz", "day"), [(NEW_YORK, datetime(2026, 11, 1)), (BERLIN, datetime(2026, 10, 25))])
def test_fall_back_never_fires_twice(tz: ZoneInfo, day: datetime) -> None:
    hour = 1 if tz is NEW_YORK else 2  # the repeated hour
    daily = CronExpression.parse(f"30 {hour} * * *")
    start = day.replace(tzinfo=tz) - timedelta(hours=1)
    times = daily.next_fire_times(start, tz, 2)
    assert times[1] - times[0] > timedelta(hours=23)
    assert times[0].fold == 0
    assert times[0].date() == day.date()
    # Quarter-hourly: strictly increasing UTC instants, no instant twice, none in the second pass.
    quarter = CronExpression.parse("*/15 * * * *")
    ticks = quarter.next_fire_times(day.replace(tzinfo=tz), tz, 24)
    utc = [t.astimezone(UTC) for t in ticks]
    assert utc == sorted(set(utc))
    walls = [t.replace(tzinfo=None) for t in ticks]
    assert len(walls) == len(set(walls))


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("61 * * * *", "minute", "61 is out of range 0-59"),
        ("* 24 * * *", "hour", "24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month", "0 is out of range 1-31"),
        ("* * * 13 *", "month", "13 is out of range 1-12"),
        ("* * * foo *", "month", "'foo' is not a number or a name"),
        ("* * * * 8", "day-of-week", "8 is out of range 0-7"),
        ("* * * * mon-bogus", "day-of-week", "'bogus' is not a number"),
        ("10-5 * * * *", "minute", "runs backwards"),
        ("*/0 * * * *", "minute", "must be a positive number"),
        ("1,,2 * * * *", "minute", "empty list element"),
        ("0 0 30 2 *", "day-of-month", "no listed day occurs"),
        ("* * *", None, "expected 5 fields"),
        ("@reboot", None, "@reboot"),
        ("@fortnightly", None, "unknown macro"),
        ("* L * * *", "hour", "'L' is not a number"),
    ],
)
def test_invalid_expressions_name_the_field(text: str, field: str | None, fragment: str) -> None:
    with pytest.raises(CronError) as info:
        CronExpression.parse(text)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert text in str(info.value)
