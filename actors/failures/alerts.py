"""Alerts: too many dead letters, or a track failing too often. Checked periodically.

Two conditions, each published in the alert envelope (:class:`subjects.alerts.AlertEnvelope`,
the same for the circuit breaker's ``tracks.alerts.breaker``) on ``tracks.alerts.<name>`` (kept
by the ``TRACKS`` stream; no track consumes it), logged as a WARNING line and, with
``TRACKS_ALERT_WEBHOOK_URL`` set, POSTed to that webhook (:mod:`actors.failures.alert_webhook`):

- ``dlq_backlog`` — the ``DLQ`` stream holds **more than** ``TRACKS_ALERT_DLQ_THRESHOLD``
  dead letters. Details: ``messages``, ``threshold``.
- ``failure_rate`` — per track, over the last ``TRACKS_ALERT_WINDOW_S`` seconds of
  ``processing_logs``: ``failed / (completed + failed)`` **exceeds**
  ``TRACKS_ALERT_FAILURE_RATE``, counted only once ``completed + failed`` reaches
  ``TRACKS_ALERT_MIN_EVENTS`` (one failure out of one is not a 100 % failure rate).
  Details: ``track``, ``rate``, ``failed``, ``total``, ``window`` (seconds), ``threshold``.
- ``stream_space`` — ``TRACKS``, ``DLQ`` or the payload store holds at least
  ``TRACKS_ALERT_STREAM_FULL`` of its ``max_bytes`` (:mod:`actors.failures.stream_space`).

The rate counts **step outcomes, not attempts**: ``completed`` rows, and ``failed`` rows
that dead-lettered the message (``details.deadLettered``: the last delivery, a permanent
error, a poison message, a max-deliveries advisory). A failed attempt that is retried is
not a failure of the step, and a step retried four times before it succeeds counts as one
success. A dead-lettered step that is replayed and then completes counts once each way.

Rate limit: each runtime checks every ``TRACKS_ALERT_INTERVAL_S``; an alert's
``Nats-Msg-Id`` is ``alert:<name>:<key>:<time bucket of one interval>``, so replicas
checking in the same interval publish it once (the stream drops the repeats). A condition
that lasts fires once per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg

from actors.failures.stream_space import STREAM_SPACE, stream_space
from foundation.env_settings import Bounds, EnvSettings
from foundation.settings import load
from subjects import DLQ_STREAM, headers, names

if TYPE_CHECKING:  # `tracks alerts check` reads: no publisher (OpenTelemetry), envelope (pydantic), webhook
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

    from actors.failures.alert_webhook import AlertWebhook
    from foundation.jetstream.publisher import EventPublisher
    from subjects.alerts import AlertEnvelope

__all__ = [
    "DLQ_BACKLOG",
    "FAILURE_RATE",
    "STREAM_SPACE",
    "Alert",
    "AlertMonitor",
    "AlertSettings",
    "check",
    "dlq_backlog",
    "failure_rates",
    "load_alert_settings",
    "publish",
    "webhook_from",
]

log = logging.getLogger(__name__)

DLQ_BACKLOG = "dlq_backlog"
FAILURE_RATE = "failure_rate"


@dataclass(frozen=True, repr=False)
class AlertSettings(EnvSettings):
    """``TRACKS_ALERT_*``: the thresholds of the SPEC (100 dead letters, 60 % over an hour)."""

    URLS = frozenset({"webhook_url"})

    dlq_threshold: Annotated[int, Bounds(ge=0)] = 100
    """Alert when the DLQ holds more dead letters than this."""
    failure_rate: Annotated[float, Bounds(gt=0, le=1)] = 0.6
    """Alert when a track's share of failed steps exceeds this (0..1)."""
    window_s: Annotated[float, Bounds(gt=0)] = 3600.0
    interval_s: Annotated[float, Bounds(gt=0)] = 30.0
    """How often a runtime checks (and at most how often one condition is published)."""
    min_events: Annotated[int, Bounds(ge=1)] = 20
    """Step outcomes a track needs in the window before its rate is judged."""
    stream_full: Annotated[float, Bounds(gt=0, le=1)] = 0.8
    """Alert when a stream holds this share of its ``max_bytes`` (full, its publishes fail)."""
    webhook_url: str | None = None
    """Also POST every alert here, as Alertmanager-compatible JSON (unset: no webhook)."""
    webhook_timeout_s: Annotated[float, Bounds(gt=0)] = 3.0
    """How long one webhook delivery may take before it is given up (and logged)."""


def load_alert_settings(**overrides: Any) -> AlertSettings:
    """Read the environment; :class:`SettingsError` with one line per bad variable."""
    return load(AlertSettings, "TRACKS_ALERT_", **overrides)


def webhook_from(settings: AlertSettings) -> AlertWebhook | None:
    """The webhook of ``TRACKS_ALERT_WEBHOOK_URL``; a firing alert not repeated within two check
    intervals is resolved by Alertmanager."""
    if not settings.webhook_url:
        return None
    from actors.failures.alert_webhook import AlertWebhook

    return AlertWebhook(
        settings.webhook_url, timeout_s=settings.webhook_timeout_s, resolve_after_s=2 * settings.interval_s
    )


@dataclass(frozen=True)
class Alert:
    name: str
    """``dlq_backlog`` | ``failure_rate`` (the subject's last token)."""
    key: str
    """What the condition is about: ``DLQ``, or the track."""
    message: str
    details: dict[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def envelope(self, source: str = "") -> AlertEnvelope:
        from subjects.alerts import AlertEnvelope, Severity

        labels = {"alertname": f"tracks_{self.name}"}
        labels.update({"track": self.key} if self.name == FAILURE_RATE else {"stream": self.key})
        return AlertEnvelope(
            kind=self.name,
            severity=Severity.WARNING,
            summary=self.message,
            labels=labels,
            starts_at=self.at,
            source=source,
            details=self.details,
        )

    def payload(self, source: str = "") -> dict[str, Any]:
        """The envelope as JSON-ready values (what is published, what ``alerts check --json`` prints)."""
        return self.envelope(source).model_dump(mode="json")


async def dlq_backlog(js: JetStreamContext, threshold: int) -> Alert | None:
    held = int((await js.stream_info(DLQ_STREAM)).state.messages)
    if held <= threshold:
        return None
    return Alert(
        DLQ_BACKLOG,
        DLQ_STREAM,
        f"the {DLQ_STREAM} stream holds {held} dead letters "
        f"(threshold {threshold}): inspect them with `tracks dlq ls`",
        {"messages": held, "threshold": threshold},
    )


# Independent of the log's size: the window's dead-lettered failures come from a partial index
# (migration 0013); a track without one cannot exceed a rate > 0. A failing track's completions
# are counted only up to what decides the verdict: with f failures the rate exceeds t exactly
# when completions < f (1 - t) / t, so counting stops just past that bound (or at min_events): an
# alert that fires has exact numbers, and a check reads O(failures) rows, not the hour's events.
_RATES_SQL = """
WITH failed AS (
    SELECT track_id, count(*) AS failed
    FROM processing_logs
    WHERE event_type = 'failed' AND details @> '{"deadLettered": true}'
      AND occurred_at >= now() - make_interval(secs => $1)
      AND ($2::text[] IS NULL OR track_id = ANY($2::text[]))
    GROUP BY track_id
)
SELECT f.track_id, f.failed, c.completed
FROM failed f
CROSS JOIN LATERAL (
    SELECT count(*) AS completed FROM (
        SELECT 1 FROM processing_logs l
        WHERE l.track_id = f.track_id AND l.event_type = 'completed'
          AND l.occurred_at >= now() - make_interval(secs => $1)
        ORDER BY l.occurred_at DESC  -- along processing_logs_track_completed (0014), newest first
        LIMIT greatest(floor(f.failed * (1 - $3::float8) / $3::float8)::bigint + 2, $4::bigint)
    ) counted
) c
ORDER BY f.track_id
"""


async def failure_rates(
    pool: asyncpg.Pool,
    settings: AlertSettings,
    tracks: Sequence[str] | None = None,
) -> list[Alert]:
    """An alert per track (of ``tracks``, or every track active in the window) over the threshold."""
    rows = await pool.fetch(
        _RATES_SQL,
        settings.window_s,
        list(tracks) if tracks is not None else None,
        settings.failure_rate,
        settings.min_events,
    )
    alerts = []
    for row in rows:
        failed, total = int(row["failed"]), int(row["completed"]) + int(row["failed"])
        rate = failed / total if total else 0.0
        if total < settings.min_events or rate <= settings.failure_rate:
            continue
        track = row["track_id"]
        alerts.append(
            Alert(
                FAILURE_RATE,
                track,
                f"track {track}: {failed} of {total} steps failed in the last {settings.window_s:g}s "
                f"({rate:.0%} > {settings.failure_rate:.0%})",
                {
                    "track": track,
                    "rate": round(rate, 4),
                    "failed": failed,
                    "total": total,
                    "window": settings.window_s,
                    "threshold": settings.failure_rate,
                },
            )
        )
    return alerts


async def check(
    js: JetStreamContext, pool: asyncpg.Pool, settings: AlertSettings, tracks: Sequence[str] | None = None
) -> list[Alert]:
    """Every condition, once; nothing is published."""
    backlog = await dlq_backlog(js, settings.dlq_threshold)
    space = [
        Alert(STREAM_SPACE, r.stream, r.message, r.details)
        for r in await stream_space(js, settings.stream_full)
    ]
    return ([backlog] if backlog else []) + space + await failure_rates(pool, settings, tracks)


async def publish(publisher: EventPublisher, alert: Alert, interval_s: float, source: str = "") -> PubAck:
    """On ``tracks.alerts.<name>``, once per condition and interval across replicas."""
    bucket = int(alert.at.timestamp() // interval_s)
    hdrs = {headers.MSG_ID: f"alert:{alert.name}:{alert.key}:{bucket}"}
    return await publisher.publish(names.alert(alert.name), alert.envelope(source).to_bytes(), hdrs)


class AlertMonitor:
    """The runtime's periodic check: its own tracks' failure rates and the DLQ backlog."""

    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        publisher: EventPublisher,
        settings: AlertSettings,
        tracks: Sequence[str],
        *,
        webhook: AlertWebhook | None = None,
        source: str = "",
    ) -> None:
        self._js = js
        self._webhook = webhook
        self._source = source
        self._pool = pool
        self._publisher = publisher
        self.settings = settings
        self._tracks = list(tracks)
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.errors = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="alert-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def check_once(self) -> list[tuple[Alert, PubAck]]:
        """Check, log and publish what fires; the PubAck says whether another replica was first."""
        fired = []
        for alert in await check(self._js, self._pool, self.settings, self._tracks):
            log.warning("ALERT %s: %s", alert.name, alert.message)
            try:
                ack = await publish(self._publisher, alert, self.settings.interval_s, self._source)
            except Exception:  # TRACKS itself may be full: the webhook still hears of it
                if self._webhook is not None and alert.name == STREAM_SPACE:
                    self._webhook.send(alert.envelope(self._source))
                raise
            self.published += 0 if ack.duplicate else 1
            if self._webhook is not None and not ack.duplicate:  # once across replicas, as published
                self._webhook.send(alert.envelope(self._source))
            fired.append((alert, ack))
        return fired

    async def _loop(self) -> None:
        """First check at start (a backlog left from before is reported at once), then every interval."""
        while True:
            began = time.monotonic()
            try:
                await self.check_once()
            except Exception as exc:  # a check must never take the runtime down
                self.errors += 1
                log.warning(
                    "alert check failed (%s: %s); next in %.0fs",
                    type(exc).__name__,
                    exc,
                    self.settings.interval_s,
                )
            await asyncio.sleep(max(0.0, self.settings.interval_s - (time.monotonic() - began)))
