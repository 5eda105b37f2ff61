"""The alert envelope: every alert (DLQ backlog, failure rate, circuit breaker) in one shape.

Published as camelCase JSON on ``tracks.alerts.<kind>`` (:func:`subjects.names.alert`)::

    {"kind": "failure_rate", "severity": "warning", "summary": "track ocr: 3 of 4 steps failed ...",
     "labels": {"alertname": "tracks_failure_rate", "track": "ocr"},
     "startsAt": "2026-11-27T19:40:00.123456+00:00", "endsAt": null,
     "source": "host-1:4711", "details": {"rate": 0.75, "failed": 3, "total": 4, ...}}

``endsAt`` is set when the condition is over (a breaker that closed). :meth:`AlertEnvelope.to_alertmanager`
gives the same alert as one item of Alertmanager's ``POST /api/v2/alerts`` body.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from subjects.jsonwire import dumpb

__all__ = ["AlertEnvelope", "AlertKind", "Severity"]


class AlertKind(StrEnum):
    DLQ_BACKLOG = "dlq_backlog"
    FAILURE_RATE = "failure_rate"
    BREAKER = "breaker"
    RESOURCE_CPU = "resource_cpu"
    """The resource guard paused fetching: the process stayed over its CPU threshold (``endsAt``: resumed)."""
    RESOURCE_MEMORY = "resource_memory"
    """The resource guard stopped the actor: its RSS reached the memory threshold."""
    STREAM_SPACE = "stream_space"
    """A stream holds ``TRACKS_ALERT_STREAM_FULL`` of its ``max_bytes`` (full, publishes to it fail)."""


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertEnvelope(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        serialize_by_alias=True,
        frozen=True,
    )

    kind: str
    """``dlq_backlog`` | ``failure_rate`` | ``breaker`` | ``resource_cpu`` | ``resource_memory`` |
    ``stream_space``: the subject's last token."""
    severity: Severity
    summary: str
    """One line for a person: what is wrong and where to look."""
    labels: dict[str, str] = Field(default_factory=dict)
    """What the alert is about (``alertname``, ``track``, ``stream``): identifies it across repeats."""
    starts_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    ends_at: datetime | None = None
    """When the condition ended (a breaker closing); ``None`` while it holds."""
    source: str = ""
    """Who noticed: ``host:pid`` of the runtime, or ``tracks-cli``."""
    details: dict[str, Any] = Field(default_factory=dict)
    """The numbers behind it (``messages``/``threshold``; ``rate``/``failed``/``total``/``window``;
    ``from``/``to``/``consecutiveFailures``)."""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", f"tracks_{self.kind}")

    def to_bytes(self) -> bytes:
        return dumpb(self.model_dump(mode="json"))

    def to_alertmanager(self, *, resolve_after_s: float, generator_url: str = "") -> dict[str, Any]:
        """One Alertmanager alert. A firing alert ends ``resolve_after_s`` after it started unless
        repeated (Alertmanager resolves what stops being sent); a resolved one ends when it did."""
        ends = self.ends_at or self.starts_at + timedelta(seconds=resolve_after_s)
        return {
            "labels": {"alertname": self.alertname, "severity": str(self.severity), **self.labels},
            "annotations": {
                "summary": self.summary,
                "source": self.source,
                "details": dumpb(self.details).decode(),
            },
            "startsAt": self.starts_at.isoformat(),
            "endsAt": ends.isoformat(),
            "generatorURL": generator_url,
        }
