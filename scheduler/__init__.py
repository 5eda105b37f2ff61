"""The scheduler: cron ticks from PostgreSQL schedules, published to JetStream (SPEC section 3).

Run it with ``tracks scheduler run``; manage schedules with ``tracks schedule ...``.
"""

from scheduler.cron import CronError, CronExpression
from scheduler.publisher import Route, message_id, tick_event, track_route
from scheduler.schedules import NewSchedule, OverlapPolicy, Schedule, ScheduleStore
from scheduler.service import Scheduler
from scheduler.settings import MisfirePolicy, SchedulerSettings
from scheduler.standard import STANDARD_SCHEDULES, standard_schedules
from scheduler.trigger import CrontabTrigger
from subjects.priority import PRIORITY_HEADER, Priority

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
