"""The scheduler: cron ticks from PostgreSQL schedules, published to JetStream (SPEC section 3).

Run it with ``tracks scheduler run``; manage schedules with ``tracks schedule ...``.
"""

from .cron import CronError, CronExpression
from .priority import PRIORITY_HEADER, Priority
from .publisher import Route, message_id, tick_event, track_route
from .schedules import NewSchedule, OverlapPolicy, Schedule, ScheduleStore
from .service import Scheduler
from .settings import MisfirePolicy, SchedulerSettings
from .standard import STANDARD_SCHEDULES, standard_schedules
from .trigger import CrontabTrigger

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
