"""Dead-letter messages that exhausted ``max_deliver`` without the handler ever deciding.

The worker dead-letters a message itself when its last delivery fails. It cannot when the
last delivery never settles: the process was killed during it, or it hung past
``ack_wait`` with nobody sending heartbeats. JetStream then gives up on the message
silently, except for one core-NATS advisory,
``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TRACKS.<track>``. This module listens for
it, reads the message back from the stream (``STREAM.MSG.GET``), dead-letters it with the
usual headers (error type ``MaxDeliveriesExceeded``), marks the step failed and publishes
``tracks.<track>.failed.<cid>``, as the worker would have.

**Idempotency.** Replicas subscribe in one queue group, so each advisory goes to one of
them. Should it be handled twice anyway, nothing is counted twice: the dead letter keeps
the ``Nats-Msg-Id`` ``dlq:TRACKS:<seq>`` the worker uses (the DLQ stream drops a repeat),
the ``failed`` event keeps ``<cid>:<track>:failed``, and the ledger is read first — a step
already failed by this message (or completed) gets no second ``failed`` row.

**Limit.** Advisories are fire-and-forget: one published while no actor of the track is
connected is lost, and the message stays in the stream, un-dead-lettered, with its step
``running`` in ``track_steps``. ``tracks chain`` shows such a step; there is no sweep for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from subjects import STREAM, SubjectKind

from .dead_letter import DeadLetter, DeadLetters, Original
from .decode import decode, fallback_correlation_id
from .errors import PoisonMessage
from .ledger import Ledger, LogRow, StepFinish
from .publisher import EventPublisher

__all__ = [
    "ERROR_TYPE",
    "QUEUE_GROUP",
    "MaxDeliveries",
    "MaxDeliveriesWatcher",
    "Outcome",
    "advisory_subject",
]

log = logging.getLogger(__name__)

ERROR_TYPE = "MaxDeliveriesExceeded"
QUEUE_GROUP = "tracks-max-deliveries"
"""One group for every runtime: each advisory is handled by one replica."""
_PREFIX = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"


def advisory_subject(track: str, stream: str = STREAM) -> str:
    """The advisory subject for the durable consumer of ``track`` (named after the track)."""
    return f"{_PREFIX}.{stream}.{track}"


@dataclass(frozen=True)
class MaxDeliveries:
    """``io.nats.jetstream.advisory.v1.max_deliver``: which message gave up, after how many tries."""

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int

    @classmethod
    def parse(cls, data: bytes) -> MaxDeliveries:
        """Raise ``ValueError`` for anything but a well-formed advisory."""
        try:
            doc = json.loads(data)
            stream, consumer = str(doc["stream"]), str(doc["consumer"])
            return cls(stream, consumer, int(doc["stream_seq"]), int(doc["deliveries"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a max_deliver advisory: {exc}") from None


class Outcome(StrEnum):
    DEAD_LETTERED = "dead_lettered"
    """Dead letter, ``failed`` record and event written now."""
    ALREADY_FAILED = "already_failed"
    """This message had already failed the step (the worker died before ``term``): the dead
    letter and event are re-sent (de-duplicated), the ledger is left alone."""
    ALREADY_COMPLETED = "already_completed"
    """The step completed (its ack was lost): its completion is re-announced, no dead letter."""
    MESSAGE_GONE = "message_gone"
    """The stream no longer holds the message (retention or a purge): nothing to dead-letter."""


@dataclass(frozen=True)
class _Step:
    status: str
    attempts: int
    activated_by: int | None
    user_id: str | None
    workflow: str | None
    output: dict[str, Any] | None


class MaxDeliveriesWatcher:
    """Subscribes for the runtime's tracks; :meth:`handle` does the work for one advisory."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        ledger: Ledger,
        publisher: EventPublisher,
        tracks: Sequence[str],
    ) -> None:
        self._nc = nc
        self._js = js
        self._pool = pool
        self._ledger = ledger
        self._publisher = publisher
        self._dead_letters = DeadLetters(publisher)
        self._tracks = list(tracks)
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.handled: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.errors = 0

    async def start(self) -> None:
        """Subscribe and flush, so advisories published from now on reach this process."""
        for track in self._tracks:
            sub = await self._nc.subscribe(advisory_subject(track), queue=QUEUE_GROUP, cb=self._on_msg)
            self._subs.append(sub)
        await self._nc.flush()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop listening and let advisories being handled finish (before the ledger closes)."""
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe of advisory subscription failed: %s", exc)
        self._subs.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def _on_msg(self, msg: Msg) -> None:
        """Handled in a task of its own: unsubscribing cancels a subscription's callback."""
        try:
            advisory = MaxDeliveries.parse(msg.data)
        except ValueError as exc:
            self.errors += 1
            log.warning("ignored advisory on %s: %s", msg.subject, exc)
            return
        name = f"max-deliveries-{advisory.stream_seq}"
        task = asyncio.create_task(self._handle_logged(advisory), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_logged(self, advisory: MaxDeliveries) -> None:
        try:
            await self.handle(advisory)
        except Exception:
            self.errors += 1
            log.exception(
                "%s: could not dead-letter stream sequence %d after %d deliveries; it is not "
                "redelivered and its step stays 'running'",
                advisory.consumer,
                advisory.stream_seq,
                advisory.deliveries,
            )

    async def handle(self, advisory: MaxDeliveries) -> Outcome:
        track, seq = advisory.consumer, advisory.stream_seq
        try:
            raw = await self._js.get_msg(advisory.stream, seq)
        except NotFoundError:
            log.warning(
                "%s: stream sequence %d exhausted its deliveries but is no longer in %s",
                track,
                seq,
                advisory.stream,
            )
            return self._count(Outcome.MESSAGE_GONE)
        original = Original(raw.subject or "", raw.data or b"", raw.headers, advisory.stream, seq)
        cid, user_id, workflow = _identify(original)
        step = await self._step(cid, track)
        if step is not None and step.status == "completed":
            await self._publisher.track_event(
                track,
                SubjectKind.COMPLETED,
                cid,
                step.output or {},
                user_id=step.user_id,
                workflow=step.workflow,
            )
            log.info(
                "%s %s: deliveries exhausted after the step completed; completion re-announced", track, cid
            )
            return self._count(Outcome.ALREADY_COMPLETED)
        error = (
            f"delivered {advisory.deliveries} times and never settled: the last delivery was neither "
            "acked, nak'ed nor terminated within ack_wait (actor killed or hung)"
        )
        letter = DeadLetter(track, cid, ERROR_TYPE, error, advisory.deliveries)
        await self._dead_letters.send_original(original, letter)
        owned = step is None or step.activated_by == seq
        already = step is not None and owned and step.status in ("failed", "timed_out")
        if step is not None:
            user_id, workflow = user_id or step.user_id, workflow or step.workflow
        if not already:
            attempt = step.attempts if step is not None else advisory.deliveries
            await self._record(advisory, letter, user_id, attempt, finish_step=step is not None and owned)
        if owned:
            await self._publisher.track_event(
                track,
                SubjectKind.FAILED,
                cid,
                {"error": error, "errorType": ERROR_TYPE},
                user_id=user_id,
                workflow=workflow,
            )
        log.warning(
            "%s %s dead-lettered after %d unsettled deliveries (stream sequence %d)",
            track,
            cid,
            advisory.deliveries,
            seq,
        )
        return self._count(Outcome.ALREADY_FAILED if already else Outcome.DEAD_LETTERED)

    async def _step(self, cid: str, track: str) -> _Step | None:
        row = await self._pool.fetchrow(
            "SELECT status, attempts, activated_by, user_id, workflow, output::text AS output "
            "FROM track_steps WHERE correlation_id = $1 AND track_id = $2",
            cid,
            track,
        )
        if row is None:
            return None
        output = json.loads(row["output"]) if row["output"] else None
        return _Step(
            row["status"], row["attempts"], row["activated_by"], row["user_id"], row["workflow"], output
        )

    async def _record(
        self,
        advisory: MaxDeliveries,
        letter: DeadLetter,
        user_id: str | None,
        attempt: int,
        *,
        finish_step: bool,
    ) -> None:
        """``finish_step``: this message owns the step, which is marked failed; otherwise (no step, or
        one claimed by another message) only the log row is written."""
        row = LogRow(
            correlation_id=letter.correlation_id,
            track=letter.track,
            event_type="failed",
            attempt=attempt,
            error=letter.error,
            error_type=ERROR_TYPE,
            user_id=user_id,
            stream_seq=advisory.stream_seq,
            details={
                "deadLettered": True,
                "via": "max_deliveries_advisory",
                "deliveries": advisory.deliveries,
                "stepFailed": finish_step,
            },
        )
        if finish_step:
            await self._ledger.finish(StepFinish("failed", row))
        else:
            await self._ledger.record_durably(row)

    def _count(self, outcome: Outcome) -> Outcome:
        self.handled[outcome] += 1
        return outcome


def _identify(original: Original) -> tuple[str, str | None, str | None]:
    """(correlation ID, user ID, workflow) as the worker saw them; the poison fallback otherwise."""
    try:
        activation = decode(original.subject, original.data, original.headers, original.stream_seq)
    except PoisonMessage:
        return fallback_correlation_id(original.subject, original.headers, original.stream_seq), None, None
    return activation.correlation_id, activation.user_id, activation.workflow
