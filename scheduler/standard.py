"""The standard schedules of SPEC section 3, registered at start unless switched off."""

from __future__ import annotations

from collections.abc import Mapping

from scheduler.schedules import NewSchedule

__all__ = ["STANDARD_SCHEDULES", "standard_schedules"]

STANDARD_SCHEDULES: tuple[tuple[str, str, str], ...] = (
    ("EMAIL_MONITORING", "0 8 * * 1-5", "email_scan"),
    ("DAILY_CLEANUP", "0 23 * * *", "file_organize"),
    ("WEEKLY_DEDUP", "0 2 * * 0", "duplicate_cleanup"),
    ("MONTHLY_REPORT", "0 1 L * *", "report_generate"),
    ("WEEKLY_BACKUP", "0 3 * * 1", "backup_create"),
)
"""(name, cron, job type): weekdays 08:00, daily 23:00, Sundays 02:00, last day 01:00, Mondays 03:00."""


def standard_schedules(targets: Mapping[str, str] | None = None, timezone: str = "UTC") -> list[NewSchedule]:
    """The standard schedules; a job type runs the track of its own name unless ``targets`` says otherwise."""
    targets = targets or {}
    return [
        NewSchedule(
            name=name, cron_expression=cron, job_type=job, target=targets.get(job, job), timezone=timezone
        )
        for name, cron, job in STANDARD_SCHEDULES
    ]
