"""Dead letters: the original body and headers on ``dlq.<track>.<cid>``, plus why it died.

The original message is settled (``term``) only after the DLQ stream acknowledged the
dead letter; if that publish fails, the original stays unacked and comes back.
"""

from __future__ import annotations

import json
import traceback as tb
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js.api import PubAck

from subjects import DLQ_STREAM, headers, names

from .publisher import EventPublisher

__all__ = ["DLQ_HEADERS", "DeadLetter", "DeadLetters", "Original"]

_TRACEBACK_LIMIT = 4000


class DLQ_HEADERS:
    SUBJECT = "Tracks-Original-Subject"
    STREAM_SEQ = "Tracks-Original-Stream-Seq"
    TRACK = "Tracks-Track"
    CORRELATION_ID = headers.CORRELATION_ID
    ERROR_TYPE = "Tracks-Error-Type"
    ERROR = "Tracks-Error"
    TRACEBACK = "Tracks-Traceback"
    DELIVERIES = "Tracks-Deliveries"
    FIRST_FAILURE = "Tracks-First-Failure"
    LAST_FAILURE = "Tracks-Last-Failure"


@dataclass(frozen=True)
class DeadLetter:
    track: str
    correlation_id: str
    error_type: str
    error: str
    deliveries: int
    traceback: str | None = None
    first_failure: datetime | None = None


@dataclass(frozen=True)
class Original:
    """The message being dead-lettered, wherever it came from: a delivery or a stream read."""

    subject: str
    data: bytes
    headers: dict[str, str] | None
    stream: str
    stream_seq: int

    @classmethod
    def of(cls, msg: Msg) -> Original:
        meta = msg.metadata
        return cls(msg.subject, msg.data, msg.headers, meta.stream, meta.sequence.stream)


def _one_line(text: str, limit: int = 1000) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class DeadLetters:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    async def send(self, msg: Msg, letter: DeadLetter) -> PubAck:
        return await self.send_original(Original.of(msg), letter)

    async def send_original(self, original: Original, letter: DeadLetter) -> PubAck:
        """Publish the dead letter; its ``Nats-Msg-Id`` is per original message, so a second
        dead letter for the same message (another replica, a retry) is dropped by the DLQ stream."""
        now = datetime.now(UTC).isoformat()
        seq = original.stream_seq
        dropped = (headers.MSG_ID, headers.TRACEPARENT)
        hdrs = {k: v for k, v in (original.headers or {}).items() if k not in dropped}
        hdrs.update(
            {
                DLQ_HEADERS.SUBJECT: original.subject,
                DLQ_HEADERS.STREAM_SEQ: str(seq),
                DLQ_HEADERS.TRACK: letter.track,
                DLQ_HEADERS.CORRELATION_ID: letter.correlation_id,
                DLQ_HEADERS.ERROR_TYPE: letter.error_type,
                DLQ_HEADERS.ERROR: _one_line(letter.error),
                DLQ_HEADERS.DELIVERIES: str(letter.deliveries),
                DLQ_HEADERS.FIRST_FAILURE: (
                    letter.first_failure.isoformat() if letter.first_failure else now
                ),
                DLQ_HEADERS.LAST_FAILURE: now,
                headers.MSG_ID: f"dlq:{original.stream}:{seq}",
            }
        )
        if letter.traceback:
            hdrs[DLQ_HEADERS.TRACEBACK] = json.dumps(letter.traceback[-_TRACEBACK_LIMIT:])
        return await self._publisher.publish(
            names.dlq(letter.track, letter.correlation_id), original.data, hdrs, stream=DLQ_STREAM
        )

    @staticmethod
    def format_traceback(exc: BaseException) -> str:
        return "".join(tb.format_exception(exc))
