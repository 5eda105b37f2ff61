"""Dead letters: the original body and headers on ``dlq.<track>.<cid>``, plus why it died.

The original message is settled (``term``) only after the DLQ stream acknowledged the
dead letter; if that publish fails, the original stays unacked and comes back.

A dead letter always fits the server's ``max_payload``, headers included (a message over it
makes the server close the connection): the error text and traceback are bounded, copied
original headers are bounded (the largest are dropped and named in ``Tracks-Dropped-Headers``),
and an original body that would not fit beside them is stored in the payload store and
referenced by ``Tracks-Original-Body-Ref`` (``tracks dlq show`` / ``replay`` fetch it back).
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback as tb
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js.api import PubAck

from actors.ledger.redaction import Redactor, redacted_body
from actors.transport.decode import stored_at_us
from actors.transport.payloads import PayloadRef, PayloadStore
from foundation.jetstream.publisher import EventPublisher, header_bytes
from subjects import DLQ_STREAM, headers, names
from subjects.headers import DLQ_HEADERS

__all__ = ["DLQ_HEADERS", "DeadLetter", "DeadLetters", "Original"]

log = logging.getLogger(__name__)

_TRACEBACK_LIMIT = 4000
_COPIED_HEADERS_LIMIT = 8 * 1024
"""Bytes of the original's own headers a dead letter keeps (the largest are dropped past it)."""
_HEADROOM = 512


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
    stored_us: int = 0
    """When the stream stored it (µs since the epoch; 0 unknown): part of a derived correlation ID."""

    @classmethod
    def of(cls, msg: Msg) -> Original:
        meta = msg.metadata
        return cls(
            msg.subject,
            msg.data,
            headers.plain(msg.headers),
            meta.stream,
            meta.sequence.stream,
            stored_at_us(msg.reply),
        )


def _one_line(text: str, limit: int = 1000) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class DeadLetters:
    def __init__(
        self, publisher: EventPublisher, payloads: PayloadStore | None = None, redact: Redactor | None = None
    ) -> None:
        self._publisher = publisher
        self._payloads = payloads
        self._redact = redact
        """``TRACKS_REDACT``: applied to the original body a dead letter carries."""

    async def send(self, msg: Msg, letter: DeadLetter) -> PubAck:
        return await self.send_original(Original.of(msg), letter)

    async def send_original(self, original: Original, letter: DeadLetter) -> PubAck:
        """Publish the dead letter; its ``Nats-Msg-Id`` is per original message, so a second
        dead letter for the same message (another replica, a retry) is dropped by the DLQ stream."""
        now = datetime.now(UTC).isoformat()
        seq = original.stream_seq
        hdrs, dropped = _copied(original.headers)
        hdrs.update(
            {
                DLQ_HEADERS.SUBJECT: _one_line(original.subject, 300),
                DLQ_HEADERS.STREAM_SEQ: str(seq),
                DLQ_HEADERS.TRACK: letter.track,
                DLQ_HEADERS.CORRELATION_ID: letter.correlation_id,
                DLQ_HEADERS.ERROR_TYPE: _one_line(letter.error_type, 200),
                DLQ_HEADERS.ERROR: _one_line(letter.error),
                DLQ_HEADERS.DELIVERIES: str(letter.deliveries),
                DLQ_HEADERS.FIRST_FAILURE: (
                    letter.first_failure.isoformat() if letter.first_failure else now
                ),
                DLQ_HEADERS.LAST_FAILURE: now,
                headers.MSG_ID: f"dlq:{original.stream}:{seq}",
            }
        )
        if dropped:
            hdrs[DLQ_HEADERS.DROPPED_HEADERS] = _one_line(",".join(dropped), 1000)
        if letter.traceback:
            hdrs[DLQ_HEADERS.TRACEBACK] = json.dumps(letter.traceback[-_TRACEBACK_LIMIT:])
        body = original.data
        if self._redact is not None:
            body = redacted_body(self._redact, letter.track, body)
        limit = self._publisher.max_payload - _HEADROOM
        if len(body) + header_bytes(hdrs) > limit:
            body = await self._store_body(original, body, letter, hdrs)
        return await self._publisher.publish(
            names.dlq(letter.track, letter.correlation_id), body, hdrs, stream=DLQ_STREAM
        )

    async def _store_body(
        self, original: Original, data: bytes, letter: DeadLetter, hdrs: dict[str, str]
    ) -> bytes:
        """The body does not fit beside the headers: keep it in the payload store, by reference."""
        if self._payloads is None:
            raise RuntimeError(
                f"dead letter of {len(data)} bytes does not fit max_payload and no payload store is set"
            )
        store = await self._payloads.ensure()
        key = f"{letter.correlation_id}/dead-letter.{original.stream}.{original.stream_seq}"
        await store.put(key, data)
        ref = PayloadRef(self._payloads.bucket, key, len(data), hashlib.sha256(data).hexdigest())
        hdrs[DLQ_HEADERS.BODY_REF] = json.dumps(ref.as_payload())
        log.info(
            "%s %s: the original body (%d bytes) is kept in %s/%s; the dead letter references it",
            letter.track,
            letter.correlation_id,
            len(data),
            self._payloads.bucket,
            key,
        )
        return b""

    @staticmethod
    def format_traceback(exc: BaseException) -> str:
        return "".join(tb.format_exception(exc))


def _copied(original: dict[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """The original's headers a dead letter keeps (bounded), and the names of those it drops."""
    skip = (headers.MSG_ID, headers.TRACEPARENT)
    kept = {k: v for k, v in headers.plain(original).items() if k not in skip}
    dropped: list[str] = []
    while kept and header_bytes(kept) > _COPIED_HEADERS_LIMIT:
        largest = max(kept, key=lambda k: len(k) + len(kept[k]))
        dropped.append(largest[:100])
        del kept[largest]
    return kept, dropped
