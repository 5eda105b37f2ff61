"""The scheduler: cron ticks from PostgreSQL schedules, published to JetStream (SPEC section 3).

Run it with ``tracks scheduler run``; manage schedules with ``tracks schedule ...``.
The names below are imported on first use (PEP 562): ``tracks schedule ls`` imports the
schedule store, not the service (APScheduler, OpenTelemetry, Prometheus) or pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from subjects._exports import lazy_exports

if TYPE_CHECKING:
    from scheduler.cron import CronError, CronExpression
    from scheduler.publisher import Route, message_id, tick_event, track_route
    from scheduler.schedules import NewSchedule, OverlapPolicy, Schedule, ScheduleStore
    from scheduler.service import Scheduler
    from scheduler.settings import MisfirePolicy, SchedulerSettings
    from scheduler.standard import STANDARD_SCHEDULES, standard_schedules
    from scheduler.trigger import CrontabTrigger
    from subjects.priority import PRIORITY_HEADER, Priority

_WHERE = {
    "scheduler.cron": ("CronError", "CronExpression"),
    "scheduler.publisher": ("Route", "message_id", "tick_event", "track_route"),
    "scheduler.schedules": ("NewSchedule", "OverlapPolicy", "Schedule", "ScheduleStore"),
    "scheduler.service": ("Scheduler",),
    "scheduler.settings": ("MisfirePolicy", "SchedulerSettings"),
    "scheduler.standard": ("STANDARD_SCHEDULES", "standard_schedules"),
    "scheduler.trigger": ("CrontabTrigger",),
    "subjects.priority": ("PRIORITY_HEADER", "Priority"),
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "PRIORITY_HEADER",
    "STANDARD_SCHEDULES",
    "CronError",
    "CronExpression",
    "CrontabTrigger",
    "MisfirePolicy",
    "NewSchedule",
    "OverlapPolicy",
    "Priority",
    "Route",
    "Schedule",
    "ScheduleStore",
    "Scheduler",
    "SchedulerSettings",
    "message_id",
    "standard_schedules",
    "tick_event",
    "track_route",
]
