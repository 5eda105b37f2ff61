"""The scheduler: cron ticks from PostgreSQL schedules, published to JetStream (SPEC section 3).

Run it with ``tracks scheduler run``; manage schedules with ``tracks schedule ...``.
The names below are imported on first use (PEP 562): ``tracks schedule ls`` imports the
schedule store, not the service (APScheduler, OpenTelemetry, Prometheus) or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


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
