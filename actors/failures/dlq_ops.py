"""The dead-letter stream as an operator sees it: list, read, replay and purge dead letters.

Dead letters are read with ``STREAM.MSG.GET`` (by sequence, or the next one matching a
subject filter), so inspecting the DLQ never leaves a consumer behind and never changes it.

**Replay** is a fresh attempt of the original message: its body and headers (without the
``Tracks-*`` failure headers and the ``Nats-*`` ones) are published again to the subject it
was first published on, keeping the correlation ID (``Tracks-Correlation-Id`` stays, so
even a plain trigger without an ID in its subject is replayed under the same one). The
ledger lets a failed step be claimed by a new message, so the step runs again; a completed
one is never re-run. The order makes every step safe to repeat:

1. publish, with ``Nats-Msg-Id`` ``replay:<dlq seq>:<generation>`` (a second replay of the
   same dead letter within the duplicate window is dropped by the stream), wait for the PubAck;
2. record a ``replayed`` row in ``processing_logs`` (durably);
3. delete the dead letter from the DLQ.

A crash between steps leaves the dead letter in place; replaying it again is harmless.
A step still ``running`` in the ledger (its message gave up while no actor heard the
max-deliveries advisory) would take the replay for a duplicate and drop it: such a replay is
refused unless forced, which marks the step failed first.
``Tracks-Replay`` on the replayed message counts the generations (1 for the first replay),
and is carried into the next dead letter should it fail again.

Note: a dead letter from a downstream track holds the upstream's completion event
(``tracks.U.completed.<cid>``); replaying it re-delivers that event to every track after U.
Those that already completed the step answer from the ledger (they re-announce, never re-run).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from subjects import DLQ_STREAM, STREAM, check_token, headers, names
from subjects.headers import DLQ_HEADERS

if TYPE_CHECKING:  # `tracks dlq ls` reads: neither the ledger's records nor the publisher (OpenTelemetry)
    from actors.ledger.store import Ledger
    from foundation.jetstream.publisher import EventPublisher

__all__ = [
    "REPLAY_HEADER",
    "NotADeadLetter",
    "Replayed",
    "Replayer",
    "StepStillRunning",
    "StoredLetter",
    "UnknownDeadLetter",
    "count",
    "letters",
    "original_body",
    "purge",
    "read",
    "resolve_run_letters",
    "subject_filter",
]

REPLAY_HEADER = headers.REPLAY

_FAILURE_HEADERS = frozenset(
    {
        DLQ_HEADERS.SUBJECT,
        DLQ_HEADERS.STREAM_SEQ,
        DLQ_HEADERS.TRACK,
        DLQ_HEADERS.ERROR_TYPE,
        DLQ_HEADERS.ERROR,
        DLQ_HEADERS.TRACEBACK,
        DLQ_HEADERS.DELIVERIES,
        DLQ_HEADERS.FIRST_FAILURE,
        DLQ_HEADERS.LAST_FAILURE,
        DLQ_HEADERS.BODY_REF,
        DLQ_HEADERS.DROPPED_HEADERS,
    }
)
"""Added by the dead-lettering; ``Tracks-Correlation-Id`` is not among them: a replay keeps it."""


class UnknownDeadLetter(LookupError):
    def __init__(self, seq: int) -> None:
        super().__init__(f"no dead letter with sequence {seq} in the {DLQ_STREAM} stream")
        self.seq = seq


class NotADeadLetter(ValueError):
    """A DLQ message without the headers a replay needs (not written by this runtime)."""


class StepStillRunning(RuntimeError):
    def __init__(self, track: str, cid: str, activated_by: int | None) -> None:
        super().__init__(
            f"step {track} of run {cid} is still 'running' (claimed by stream sequence {activated_by}): "
            "a replay would be dropped as a duplicate. If no actor runs it, replay with --force "
            "(the step is marked failed first)"
        )


@dataclass(frozen=True)
class StoredLetter:
    """One message of the DLQ stream, with its failure headers as fields."""

    seq: int
    subject: str
    stored_at: datetime | None
    data: bytes
    headers: dict[str, str]

    @classmethod
    def of(cls, raw: RawStreamMsg) -> StoredLetter:
        """Headers as plain text (nats.py gives a stored non-ASCII value as an ``email`` ``Header``)."""
        return cls(raw.seq or 0, raw.subject or "", raw.time, raw.data or b"", headers.plain(raw.headers))

    def _get(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def track(self) -> str | None:
        return self._get(DLQ_HEADERS.TRACK)

    @property
    def correlation_id(self) -> str | None:
        return self._get(DLQ_HEADERS.CORRELATION_ID)

    @property
    def error_type(self) -> str | None:
        return self._get(DLQ_HEADERS.ERROR_TYPE)

    @property
    def error(self) -> str | None:
        return self._get(DLQ_HEADERS.ERROR)

    @property
    def original_subject(self) -> str | None:
        return self._get(DLQ_HEADERS.SUBJECT)

    @property
    def deliveries(self) -> int | None:
        value = self._get(DLQ_HEADERS.DELIVERIES)
        return int(value) if value and value.isdigit() else None

    @property
    def traceback(self) -> str | None:
        """The handler's traceback (stored JSON-encoded, so that it fits in one header line)."""
        value = self._get(DLQ_HEADERS.TRACEBACK)
        if value is None:
            return None
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        return decoded if isinstance(decoded, str) else value

    @property
    def replays(self) -> int:
        value = self._get(REPLAY_HEADER)
        return int(value) if value and value.isdigit() else 0

    @property
    def body_ref(self) -> dict[str, object] | None:
        """Where the original body is kept when it was too large to travel with the dead letter."""
        value = self._get(DLQ_HEADERS.BODY_REF)
        if not value:
            return None
        try:
            ref = json.loads(value)
        except json.JSONDecodeError:
            return None
        from actors.transport.payloads import is_ref  # its JSON encoder (pydantic-core): not for ls

        return ref if is_ref(ref) else None

    def original_headers(self) -> dict[str, str]:
        """The headers the message had before it died, minus the ``Nats-*`` ones (IDs, expectations)."""
        return {k: v for k, v in self.headers.items() if not _dropped_on_replay(k)}


async def original_body(js: JetStreamContext, letter: StoredLetter) -> bytes:
    """The body the message had: the dead letter's own, or fetched back from the payload store."""
    ref = letter.body_ref
    if ref is None:
        return letter.data
    from actors.transport.payloads import PayloadRef, PayloadStore

    parsed = PayloadRef.parse(ref)
    store = await PayloadStore(js, bucket=parsed.bucket).ensure()
    result = await store.get(parsed.key)
    return bytes(result.data or b"")


async def resolve_run_letters(
    js: JetStreamContext, ledger: Ledger, correlation_id: str, tracks: list[str], how: str
) -> int:
    """The dead letters of ``tracks`` for one run are settled another way (``tracks resume``): each is
    recorded as ``dead_letter_resolved`` (with what it said) and then removed from the DLQ, so
    ``tracks dlq ls`` and the DLQ alert stop counting it. Returns how many were resolved."""
    from actors.ledger.records import LogRow

    resolved = 0
    for track in tracks:
        wanted = names.dlq(track, correlation_id)
        seq = 1
        while True:
            try:
                raw = await js.get_msg(DLQ_STREAM, seq=seq, subject=wanted, next=True)
            except NotFoundError:
                break
            letter = StoredLetter.of(raw)
            seq = letter.seq + 1
            await ledger.record_durably(
                LogRow(
                    correlation_id=correlation_id,
                    track=track,
                    event_type="dead_letter_resolved",
                    attempt=0,
                    error=letter.error,
                    error_type=letter.error_type,
                    details={"dlqSeq": letter.seq, "how": how, "originalSubject": letter.original_subject},
                )
            )
            with suppress(NotFoundError):
                await js.delete_msg(DLQ_STREAM, letter.seq)
            resolved += 1
    return resolved


def _dropped_on_replay(name: str) -> bool:
    return name in _FAILURE_HEADERS or name == headers.TRACEPARENT or name.lower().startswith("nats-")


@dataclass(frozen=True)
class Replayed:
    letter: StoredLetter
    subject: str
    stream_seq: int
    duplicate: bool
    """The stream had already accepted this replay (an earlier, interrupted one): not published twice."""


def subject_filter(track: str | None) -> str:
    if track is None:
        return f"{names.DLQ_ROOT}.>"
    return names.dlq(check_token(track, "track name"), "*")


async def read(js: JetStreamContext, seq: int) -> StoredLetter:
    try:
        return StoredLetter.of(await js.get_msg(DLQ_STREAM, seq))
    except NotFoundError:
        raise UnknownDeadLetter(seq) from None


async def letters(
    js: JetStreamContext,
    track: str | None = None,
    limit: int | None = None,
) -> AsyncIterator[StoredLetter]:
    """Dead letters oldest first, one request each (``next_by_subj``): no consumer is created."""
    wanted = subject_filter(track)
    seq, found = 1, 0
    while limit is None or found < limit:
        try:
            raw = await js.get_msg(DLQ_STREAM, seq=seq, subject=wanted, next=True)
        except NotFoundError:
            return
        letter = StoredLetter.of(raw)
        yield letter
        found += 1
        seq = letter.seq + 1


async def count(js: JetStreamContext, track: str | None = None) -> int:
    """Dead letters held, for ``track`` or in all."""
    if track is None:
        return int((await js.stream_info(DLQ_STREAM)).state.messages)
    info = await js.stream_info(DLQ_STREAM, subjects_filter=subject_filter(track))
    return sum((info.state.subjects or {}).values())


class Replayer:
    """Replays dead letters; needs the database for the ledger (the step's state, the records)."""

    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        ledger: Ledger,
        publisher: EventPublisher | None = None,
    ) -> None:
        self._js = js
        self._pool = pool
        self._ledger = ledger
        if publisher is None:
            from foundation.jetstream.publisher import EventPublisher

            publisher = EventPublisher(js)
        self._publisher = publisher

    async def replay(self, seq: int, *, force: bool = False) -> Replayed:
        """Publish dead letter ``seq`` again as a fresh attempt, record it, then remove it from the DLQ."""
        from actors.ledger.records import LogRow

        letter = await read(self._js, seq)
        subject, track, cid = letter.original_subject, letter.track, letter.correlation_id
        if not (subject and track and cid):
            raise NotADeadLetter(
                f"DLQ message {seq} lacks {DLQ_HEADERS.SUBJECT}, {DLQ_HEADERS.TRACK} or "
                f"{DLQ_HEADERS.CORRELATION_ID}: it was not dead-lettered by a tracks actor"
            )
        await self._free_step(seq, cid, track, force=force)
        generation = letter.replays + 1
        hdrs = {
            **letter.original_headers(),
            REPLAY_HEADER: str(generation),
            headers.MSG_ID: f"replay:{seq}:{generation}",
        }
        body = await original_body(self._js, letter)
        hdrs.pop(DLQ_HEADERS.BODY_REF, None)
        ack = await self._publisher.publish(subject, body, hdrs, stream=STREAM)
        await self._ledger.record_durably(
            LogRow(
                correlation_id=cid,
                track=track,
                event_type="replayed",
                attempt=0,
                details={
                    "dlqSeq": seq,
                    "originalSubject": subject,
                    "replayStreamSeq": ack.seq,
                    "replay": generation,
                    "originalStreamSeq": letter.headers.get(DLQ_HEADERS.STREAM_SEQ),
                    "errorType": letter.error_type,
                    "duplicate": bool(ack.duplicate),
                },
            )
        )
        with suppress(NotFoundError):  # deleted meanwhile (a concurrent replay or purge): goal reached anyway
            await self._js.delete_msg(DLQ_STREAM, seq)
        return Replayed(letter, subject, ack.seq, bool(ack.duplicate))

    async def _free_step(self, seq: int, cid: str, track: str, *, force: bool) -> None:
        """A step still ``running`` would take the replay for a duplicate and drop it, losing it.

        That happens when the step's message gave up while no actor heard the advisory. Refused
        unless ``force``: the step is then marked failed first (only right when nothing runs it).
        """
        row = await self._pool.fetchrow(
            "SELECT status, activated_by FROM track_steps WHERE correlation_id = $1 AND track_id = $2",
            cid,
            track,
        )
        if row is None or row["status"] != "running":
            return
        if not force:
            raise StepStillRunning(track, cid, row["activated_by"])
        from actors.ledger.records import LogRow, StepFinish

        await self._ledger.finish(
            StepFinish(
                "failed",
                LogRow(
                    correlation_id=cid,
                    track=track,
                    event_type="failed",
                    attempt=0,
                    error="marked failed to replay it",
                    error_type="ForcedReplay",
                    stream_seq=row["activated_by"],
                    details={"deadLettered": False, "via": "dlq_replay_force", "dlqSeq": seq},
                ),
            )
        )


async def purge(js: JetStreamContext, track: str | None = None) -> int:
    """Remove dead letters (all, or ``track``'s); returns how many there were just before."""
    held = await count(js, track)
    if track is None:
        await js.purge_stream(DLQ_STREAM)
    else:
        await js.purge_stream(DLQ_STREAM, subject=subject_filter(track))
    return held
