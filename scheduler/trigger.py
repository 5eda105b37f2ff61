"""APScheduler adapter: fire a :class:`CronExpression` in a time zone, with crontab(5) semantics.

APScheduler 3's own ``CronTrigger.from_crontab`` reads day-of-week 0 as Monday and ANDs the
two day fields; this trigger delegates every computation to :meth:`CronExpression.next_after`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger

from scheduler.cron import CronExpression

__all__ = ["CrontabTrigger"]

_EPSILON = timedelta(microseconds=1)


class CrontabTrigger(BaseTrigger):  # type: ignore[misc]
    __slots__ = ("expression", "timezone")

    def __init__(self, expression: CronExpression, timezone: tzinfo) -> None:
        self.expression = expression
        self.timezone = timezone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        # Without a previous fire, a tick due exactly "now" still counts (APScheduler's convention).
        after = previous_fire_time if previous_fire_time is not None else now - _EPSILON
        return self.expression.next_after(after, self.timezone)

    def __str__(self) -> str:
        return f"crontab[{self.expression.text}, {self.timezone}]"

    def __repr__(self) -> str:
        return f"<CrontabTrigger {self.expression.text!r} tz={self.timezone}>"
