"""Publish to JetStream with a PRODUCER span, ``traceparent``, a ``Nats-Msg-Id`` and retries.

A publish is only done when JetStream acknowledged it (the PubAck); while NATS is away it
is retried with back-off for up to ``give_up_s``, after which the caller leaves the
message unacked for redelivery.

A message over the server's ``max_payload`` (body and headers: the server counts both, nats.py
checks only the body) is refused here with :class:`MessageTooLarge` before it is sent: the
server would answer it by closing the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

import nats.errors
from nats.js import JetStreamContext, api
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError, TooManyStalledMsgsError
from opentelemetry.trace import SpanKind, StatusCode

from foundation import metrics, telemetry
from foundation.backoff import Backoff
from foundation.jetstream.pubacks import PubAckInbox
from foundation.jetstream.timers import Deadlines
from subjects import EventType, SubjectKind, encode_event, headers, names

__all__ = ["EventPublisher", "MessageTooLarge", "bounded", "header_bytes"]

log = logging.getLogger(__name__)
_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    TooManyStalledMsgsError,
    NoStreamResponseError,
    asyncio.TimeoutError,
)


class MessageTooLarge(Exception):
    """A message the server would refuse (and close the connection for): never sent, never retried
    (the runtime's retry policy counts it as permanent)."""


def header_bytes(hdrs: dict[str, str]) -> int:
    """The size of ``hdrs`` on the wire (``NATS/1.0`` line, one ``name: value`` line each)."""
    return 12 + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in hdrs.items())


def bounded(text: str, limit: int = 2000) -> str:
    """Error text that goes into a message: one line at most ``limit`` characters (input is echoed
    in errors, and a message must never outgrow ``max_payload``)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _producer_attributes(
    subject: str, template: str, correlation_id: str | None, msg_id: str | None
) -> dict[str, object]:
    """OpenTelemetry messaging attributes of a publish (semantic conventions, NATS)."""
    attributes: dict[str, object] = {
        "messaging.system": "nats",
        "messaging.operation.type": "publish",
        "messaging.operation.name": "publish",
        "messaging.destination.name": subject,
        "messaging.destination.template": template,
    }
    if msg_id:
        attributes["messaging.message.id"] = msg_id
    if correlation_id:
        attributes["messaging.message.conversation_id"] = correlation_id
    return attributes


class EventPublisher:
    def __init__(self, js: JetStreamContext, *, timeout_s: float = 5.0, give_up_s: float = 30.0) -> None:
        self._js = js
        self._nc = js._nc  # nats.py's JetStreamContext keeps the connection it was made from
        self._acks = PubAckInbox(self._nc)
        self._timeout_s = timeout_s
        self._give_up_s = give_up_s

    @property
    def jetstream(self) -> JetStreamContext:
        return self._js

    @property
    def max_payload(self) -> int:
        """The server's limit for one message, headers included (1 MiB until the server said)."""
        value = getattr(self._nc, "max_payload", 0)
        return int(value) if isinstance(value, int) and value > 0 else 1024 * 1024

    async def publish(
        self, subject: str, body: bytes, hdrs: dict[str, str], *, stream: str | None = None
    ) -> PubAck:
        template, correlation_id = names.template(subject)
        span = telemetry.start_span(
            f"publish {template}",  # low cardinality: never an ID in a span name
            kind=SpanKind.PRODUCER,
            attributes=_producer_attributes(subject, template, correlation_id, hdrs.get(headers.MSG_ID)),
        )
        try:
            telemetry.inject_span(hdrs, span)
            try:
                return await self._publish_once(subject, body, hdrs, stream)
            except (*_RETRYABLE, APIError) as exc:
                return await self._retry(subject, body, hdrs, stream, exc)
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {bounded(str(exc), 200)}")
            raise
        finally:
            span.end()

    async def _retry(
        self, subject: str, body: bytes, hdrs: dict[str, str], stream: str | None, error: Exception
    ) -> PubAck:
        """The first attempt failed: retry with back-off while the error says NATS may come back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._give_up_s
        backoff = Backoff()
        while True:
            if isinstance(error, APIError) and error.code != 503:  # 503: JetStream not ready after a restart
                raise error
            if loop.time() + backoff.peek() > deadline:
                raise error
            delay = backoff.next()
            log.warning("publish to %s failed (%s); retrying in %.1fs", subject, type(error).__name__, delay)
            await asyncio.sleep(delay)
            try:
                return await self._publish_once(subject, body, hdrs, stream)
            except (*_RETRYABLE, APIError) as exc:
                error = exc

    async def _publish_once(
        self, subject: str, body: bytes, hdrs: dict[str, str], stream: str | None
    ) -> PubAck:
        """Pipelined publish (no request round trip per message), still confirmed by its PubAck."""
        if stream is not None:
            hdrs[api.Header.EXPECTED_STREAM] = stream
        size = len(body) + header_bytes(hdrs)
        if size > self.max_payload:
            raise MessageTooLarge(
                f"a message of {size} bytes (headers included) to {subject[:200]} exceeds the server's "
                f"max_payload of {self.max_payload} bytes"
            )
        future = await self._acks.publish(subject, body, hdrs)
        deadlines = Deadlines.current()
        deadline = deadlines.arm(future, self._timeout_s)
        timed = _ack_waits()
        since = time.monotonic() if timed else 0.0
        try:
            ack: PubAck = await future
        except asyncio.CancelledError:
            if deadline.fired:
                raise nats.errors.TimeoutError from None
            raise
        finally:
            deadlines.disarm(deadline)
        if timed:
            _observe_ack_wait(ack.stream, time.monotonic() - since)
        return ack

    def track_event(
        self,
        track: str,
        kind: SubjectKind,
        correlation_id: str,
        payload: dict[str, object],
        *,
        user_id: str | None = None,
        workflow: str | None = None,
        targets: list[str] | None = None,
        priority: str | None = None,
    ) -> Awaitable[PubAck]:
        """``tracks.<track>.<kind>.<cid>``, de-duplicated per (cid, track, kind) (a coroutine to await).

        ``priority``: the step's ``Tracks-Priority``, carried on to the steps this event starts."""
        body = encode_event(
            track,
            EventType(str(kind)),
            payload,
            correlation_id=correlation_id,
            source_track=track,
            target_tracks=targets,
            user_id=user_id,
            workflow=workflow,
        )
        hdrs = {headers.MSG_ID: f"{correlation_id}:{track}:{kind}"}
        if priority:
            hdrs[headers.PRIORITY] = priority
        return self.publish(names.event(track, kind, correlation_id), body, hdrs)


PUBACK_WAIT = "tracks_puback_wait_seconds"
_puback_waits: dict[str, metrics.Observing] = {}


def _ack_waits() -> bool:
    """Whether PubAck waits are observed (metrics on)."""
    return bool(_puback_waits) or metrics.enabled()


def _observe_ack_wait(stream: str, seconds: float) -> None:
    """``tracks_puback_wait_seconds{stream}``: labels bound once per stream."""
    bound = _puback_waits.get(stream)
    if bound is None:
        doc = "Time from publishing to the stream's PubAck."
        made = metrics.histogram(PUBACK_WAIT, doc, ("stream",), metrics.WAIT_BUCKETS)
        bound = _puback_waits[stream] = made.labels(stream)
    bound.observe(seconds)
