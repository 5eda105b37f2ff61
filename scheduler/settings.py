"""Scheduler settings: frozen, validated, read once from ``TRACKS_SCHEDULER_*`` variables."""

from __future__ import annotations

import os
import socket
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler.misfire import MisfirePolicy  # here for compatibility: it lives with the misfire plans

__all__ = ["MisfirePolicy", "SchedulerSettings"]

PositiveFloat = Annotated[float, Field(gt=0)]


def _instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRACKS_SCHEDULER_", frozen=True, extra="ignore")

    standard_schedules: bool = True
    """Register the SPEC section 3 schedules at start (an upsert that never overwrites edits)."""
    standard_targets: dict[str, str] = Field(default_factory=dict)
    """JSON ``{"email_scan": "gmail", ...}``: the track a standard job type runs; default the job type."""
    misfire_policy: MisfirePolicy = MisfirePolicy.COALESCE
    misfire_grace_s: Annotated[float, Field(ge=0)] = 300.0
    """How late a missed tick may still fire; a schedule's own ``misfire_grace_s`` wins."""
    job_timeout_s: PositiveFloat = 3600.0
    """A run still ``running`` after this is marked failed; a schedule's own ``timeout_s`` wins."""
    sweep_interval_s: PositiveFloat = 5.0
    """How often running executions are checked against their timeout."""
    max_recorded_skips: Annotated[int, Field(ge=1)] = 100
    """Most ticks older than the grace window recorded one row each per schedule after downtime;
    the last row says until when later ones were skipped too."""
    history_consumer: str = "scheduler-history"
    """Durable JetStream consumer that turns completion/failure events into execution history."""
    metrics_interval_s: PositiveFloat = 30.0
    listen_ping_s: PositiveFloat = 5.0
    """Liveness check of the LISTEN connection, so a PostgreSQL restart is noticed and healed."""
    instance: str = Field(default_factory=_instance)
    name_prefix: str = ""
    """Fire only schedules whose name starts with this (keeps benchmarks and tests apart)."""
