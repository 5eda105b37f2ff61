"""The SPEC section 3 schedules: registered by default, idempotently, never overwriting edits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.js import JetStreamContext

from foundation.settings import Settings
from scheduler.schedules import ScheduleStore
from scheduler.settings import SchedulerSettings
from scheduler.standard import STANDARD_SCHEDULES, standard_schedules
from tests.support.scheduling import running_scheduler

NAMES = [name for name, _, _ in STANDARD_SCHEDULES]


@pytest.fixture
async def clean(pool: asyncpg.Pool) -> AsyncIterator[ScheduleStore]:
    await pool.execute("DELETE FROM job_schedules WHERE name = ANY($1)", NAMES)
    yield ScheduleStore(pool)
    await pool.execute("DELETE FROM job_schedules WHERE name = ANY($1)", NAMES)


async def test_a_starting_scheduler_registers_them_once_and_keeps_user_edits(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, clean: ScheduleStore, unique: str
) -> None:
    async with running_scheduler(
        settings, unique, standard_schedules=True, standard_targets={"email_scan": "gmail"}
    ):
        pass
    rows = {s.name: s for s in await clean.list_all() if s.name in NAMES}
    assert {n: (s.cron.text, s.job_type, s.target) for n, s in rows.items()} == {
        "EMAIL_MONITORING": ("0 8 * * 1-5", "email_scan", "gmail"),
        "DAILY_CLEANUP": ("0 23 * * *", "file_organize", "file_organize"),
        "WEEKLY_DEDUP": ("0 2 * * 0", "duplicate_cleanup", "duplicate_cleanup"),
        "MONTHLY_REPORT": ("0 1 L * *", "report_generate", "report_generate"),
        "WEEKLY_BACKUP": ("0 3 * * 1", "backup_create", "backup_create"),
    }
    await pool.execute(
        "UPDATE job_schedules SET cron_expression = '0 9 * * 1-5' WHERE name = 'EMAIL_MONITORING'"
    )
    await clean.set_enabled("WEEKLY_BACKUP", False)
    assert await clean.register(standard_schedules()) == []
    async with running_scheduler(settings, unique, standard_schedules=True):
        pass
    assert (await clean.get("EMAIL_MONITORING")).cron.text == "0 9 * * 1-5"
    assert (await clean.get("WEEKLY_BACKUP")).enabled is False


async def test_switched_off_registers_nothing(
    settings: Settings, js: JetStreamContext, clean: ScheduleStore, unique: str
) -> None:
    async with running_scheduler(settings, unique, standard_schedules=False):
        pass
    assert [s for s in await clean.list_all() if s.name in NAMES] == []


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKS_SCHEDULER_STANDARD_SCHEDULES", "false")
    monkeypatch.setenv("TRACKS_SCHEDULER_STANDARD_TARGETS", '{"backup_create": "backups"}')
    monkeypatch.setenv("TRACKS_SCHEDULER_MISFIRE_POLICY", "skip")
    loaded = SchedulerSettings()
    assert loaded.standard_schedules is False
    assert loaded.misfire_policy == "skip"
    targets = {s.job_type: s.target for s in standard_schedules(loaded.standard_targets)}
    assert targets["backup_create"] == "backups"
    assert targets["email_scan"] == "email_scan"
