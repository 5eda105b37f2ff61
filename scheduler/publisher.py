"""Publishing a tick: a ``TrackEvent`` run command with a deterministic ``Nats-Msg-Id``.

The message ID is ``schedule:<name>:<fire time, ISO UTC>``: every replica firing the same
tick produces the same ID, and JetStream keeps only the first within its duplicate window.
Each tick opens a producer span and carries its ``traceparent``: one run, one trace. The
publish itself is the actors' (:class:`foundation.jetstream.publisher.EventPublisher`): the
same PubAck inbox, size check, retries and lean spans.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from foundation import telemetry
from foundation.jetstream.publisher import EventPublisher
from scheduler.schedules import Schedule
from subjects import EventMetadata, EventType, TrackEvent, names
from subjects.headers import MSG_ID, PRIORITY

__all__ = ["Route", "TickPublisher", "message_id", "tick_event", "track_route"]

log = logging.getLogger(__name__)

Route = Callable[[Schedule, str], str]
"""Where a schedule's tick goes: the seam for targets other than a track (workflows, later)."""

SOURCE = "scheduler"


def track_route(schedule: Schedule, correlation_id: str) -> str:
    """``tracks.<target>.run.<cid>``; a ``high`` schedule's ticks take the target's urgent lane
    (``tracks.<target>.urgent.<cid>``), which no backlog of lower-priority work holds back."""
    return names.trigger(schedule.target, correlation_id, schedule.priority.value)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_id(schedule_name: str, scheduled_for: datetime) -> str:
    return f"schedule:{schedule_name}:{iso_utc(scheduled_for)}"


def tick_event(schedule: Schedule, scheduled_for: datetime, correlation_id: str) -> TrackEvent:
    metadata = EventMetadata(
        correlation_id=correlation_id,
        source_track=SOURCE,
        schedule=schedule.name,  # type: ignore[call-arg]  # extra fields are allowed on the wire
        scheduledFor=iso_utc(scheduled_for),
        priority=schedule.priority.value,
        jobType=schedule.job_type,
    )
    return TrackEvent(
        track_id=schedule.target, event_type=EventType.DATA_READY, payload=schedule.payload, metadata=metadata
    )


@dataclass(frozen=True)
class Published:
    subject: str
    stream_seq: int
    duplicate: bool


class TickPublisher:
    def __init__(self, js: JetStreamContext, route: Route = track_route, *, timeout_s: float = 5.0) -> None:
        # no retries of its own: TickFirer retries a tick (same Nats-Msg-Id), then records it failed
        self._publisher = EventPublisher(js, timeout_s=timeout_s, give_up_s=0.0)
        self._route = route

    async def publish(self, schedule: Schedule, scheduled_for: datetime, correlation_id: str) -> Published:
        """Publish and wait for the PubAck; ``duplicate`` means another replica already fired it."""
        subject = self._route(schedule, correlation_id)
        headers = {MSG_ID: message_id(schedule.name, scheduled_for), PRIORITY: schedule.priority.value}
        body = tick_event(schedule, scheduled_for, correlation_id).to_bytes()
        attributes = {
            "tracks.schedule": schedule.name,
            "tracks.scheduled_for": iso_utc(scheduled_for),
            "messaging.message.conversation_id": correlation_id,
            "messaging.destination.name": subject,
        }
        # The tick is the root of the run's trace: its publish (the PRODUCER span) is its child,
        # and the track's spans continue it via traceparent. Named by schedule: never an ID.
        span = telemetry.start_span(
            f"tick {schedule.name}", kind=SpanKind.INTERNAL, attributes=attributes, parent=None
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            ack = await self._publisher.publish(subject, body, headers)
            span.set_attribute("tracks.duplicate", bool(ack.duplicate))
        finally:
            otel_context.detach(token)
            span.end()
        if ack.duplicate:
            log.debug("tick %s already published by another replica", headers[MSG_ID])
        return Published(subject, ack.seq, bool(ack.duplicate))
