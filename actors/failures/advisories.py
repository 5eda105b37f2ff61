"""Messages that no delivery settled: the max-deliveries advisory, and a sweep for the unheard.

The worker settles every message it starts. It cannot when a delivery never ends: the
process was killed during it, or hung past ``ack_wait`` with nobody sending heartbeats.
The next delivery's claim sees the step still on that message's last try and dead-letters it
(:class:`~actors.ledger.store.Verdict` ``EXHAUSTED``). When JetStream gives up first (the consumer's
own ``max_deliver``, a backstop above the track's), it says so once, with a core-NATS
advisory, ``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TRACKS.<track>``:
:class:`MaxDeliveriesWatcher` hears it, reads the message back (``STREAM.MSG.GET``) and
buries it through the one door (:class:`actors.runtime.settlement.DeadLetterDoor`): dead letter
(error type ``MaxDeliveriesExceeded``), step failed, ``tracks.<track>.failed.<cid>``, run
failed and announced — exactly as the worker would.

**Idempotency.** Replicas subscribe in one queue group, so each advisory goes to one of
them. Should it be handled twice anyway, nothing is counted twice: the dead letter keeps
the ``Nats-Msg-Id`` ``dlq:TRACKS:<seq>`` the worker uses (the DLQ stream drops a repeat),
the ``failed`` event keeps ``<cid>:<track>:failed``, and the ledger is read first — a step
already failed by this message (or completed) gets no second ``failed`` row.

**Unheard advisories.** Advisories are fire-and-forget: one published while no actor of the
track is connected is lost. :class:`UnsettledSweep` finds what it would have settled: at start
and every ``TRACKS_SWEEP_INTERVAL_S``, the steps still ``running`` whose activating message is
at or below their consumer's ack floor (JetStream holds it no more) and idle for ``ack_wait``,
and buries each through the same door.

**Partitions.** An actor cut off from NATS for longer than ``ack_wait`` loses its messages to
the other replicas (JetStream redelivers them); when it comes back, its late outcomes are
fenced off by the claim's attempt (recorded as ``superseded``, never announced), and what it
held is settled by the replica that took it over. An actor cut off from PostgreSQL holds its
messages (heartbeats go on) and waits: nothing is acked before its outcome is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors.errors import PoisonMessage
from actors.failures.dead_letter import DeadLetter, Original
from actors.failures.door import EXHAUSTED_ERROR, Burial, DeadLetterDoor
from actors.ledger.store import Ledger, StepState
from actors.transport.decode import decode, fallback_correlation_id, time_us
from foundation.jetstream.publisher import EventPublisher
from subjects import STREAM, SubjectKind, headers, names

__all__ = [
    "ERROR_TYPE",
    "QUEUE_GROUP",
    "MaxDeliveries",
    "MaxDeliveriesWatcher",
    "Outcome",
    "UnsettledSweep",
    "advisory_subject",
]

log = logging.getLogger(__name__)

ERROR_TYPE = EXHAUSTED_ERROR
QUEUE_GROUP = "tracks-max-deliveries"
"""One group for every runtime: each advisory is handled by one replica."""


def advisory_subject(track: str, stream: str = STREAM) -> str:
    """The advisory subject for the durable consumer of ``track`` (named after the track)."""
    return names.max_deliveries_advisory(stream, track)


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


class MaxDeliveriesWatcher:
    """Subscribes for the runtime's tracks; :meth:`handle` does the work for one advisory."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        ledger: Ledger,
        publisher: EventPublisher,
        door: DeadLetterDoor,
        tracks: Sequence[str],
    ) -> None:
        self._nc = nc
        self._js = js
        self._ledger = ledger
        self._publisher = publisher
        self._door = door
        self._tracks = list(tracks)
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.handled: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.errors = 0

    async def start(self) -> None:
        """Subscribe and flush, so advisories published from now on reach this process."""
        for track in self._tracks:
            for consumer in (track, names.urgent_consumer(track)):  # its urgent lane gives up too
                sub = await self._nc.subscribe(advisory_subject(consumer), queue=QUEUE_GROUP, cb=self._on_msg)
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
            log.warning("ignored advisory on %s: %s", msg.subject[:200], exc)
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
                "%s: could not dead-letter stream sequence %d after %d deliveries; the unsettled-step "
                "sweep will try again",
                advisory.consumer,
                advisory.stream_seq,
                advisory.deliveries,
            )

    async def handle(self, advisory: MaxDeliveries) -> Outcome:
        track, seq = names.consumer_track(advisory.consumer), advisory.stream_seq
        original = await read_original(self._js, advisory.stream, seq)
        if original is None:
            log.warning(
                "%s: stream sequence %d exhausted its deliveries but is no longer in %s",
                track,
                seq,
                advisory.stream,
            )
            return self._count(Outcome.MESSAGE_GONE)
        cid, user_id, workflow = _identify(original)
        step = await self._ledger.step(cid, track)
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
        owned = step is None or step.activated_by == seq
        already = step is not None and owned and step.status in ("failed", "timed_out")
        finish = step is not None and owned and step.status == "running"
        if step is not None:
            user_id, workflow = user_id or step.user_id, workflow or step.workflow
        await self._door.bury(
            Burial(
                original,
                DeadLetter(track, cid, ERROR_TYPE, error, advisory.deliveries),
                user_id=user_id,
                workflow=workflow,
                finish_step=finish,
                fence=step.attempts if finish and step is not None else None,
                attempt=step.attempts if step is not None else advisory.deliveries,
                details={
                    "via": "max_deliveries_advisory",
                    "deliveries": advisory.deliveries,
                    "stepFailed": finish,
                },
                announce=owned,
                fail_run=owned,
                record=not already,
            )
        )
        log.warning(
            "%s %s dead-lettered after %d unsettled deliveries (stream sequence %d)",
            track,
            cid,
            advisory.deliveries,
            seq,
        )
        return self._count(Outcome.ALREADY_FAILED if already else Outcome.DEAD_LETTERED)

    def _count(self, outcome: Outcome) -> Outcome:
        self.handled[outcome] += 1
        return outcome


class UnsettledSweep:
    """Settles steps whose message JetStream gave up on while no actor heard the advisory."""

    def __init__(
        self, js: JetStreamContext, ledger: Ledger, door: DeadLetterDoor, ack_waits: Mapping[str, float]
    ) -> None:
        self._js = js
        self._ledger = ledger
        self._door = door
        self._ack_waits = dict(ack_waits)
        self.settled = 0

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """At start, then every ``interval_s`` until ``stop``; a failed round is logged and retried."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # NATS or PostgreSQL away: next round
                log.warning("the unsettled-step sweep failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    async def sweep(self) -> int:
        """One round over every track; returns how many steps it settled.

        A step is judged against the floor of the consumer that delivered its message: the
        track's own, or its urgent lane's (``<track>~urgent``) for a high-priority trigger, whose
        messages the track's own consumer never holds (its floor passes them at once)."""
        settled = 0
        for track, ack_wait in self._ack_waits.items():
            main = await self._floor(track)
            if main is None:
                continue
            lane = await self._floor(names.urgent_consumer(track))
            top = max(main, lane or 0)
            if not top:
                continue
            for step in await self._ledger.unsettled_steps(track, top, ack_wait):
                if await self._settle(step, main, lane):
                    settled += 1
        self.settled += settled
        return settled

    async def _floor(self, consumer: str) -> int | None:
        """The consumer's ack floor (a stream sequence); ``None`` when it does not exist."""
        try:
            info = await self._js.consumer_info(STREAM, consumer)
        except NotFoundError:
            return None
        return info.ack_floor.stream_seq if info.ack_floor is not None else 0

    async def _settle(self, step: StepState, main: int, lane: int | None) -> bool:
        assert step.activated_by is not None
        found = await read_original(self._js, STREAM, step.activated_by)
        original = found or Original("", b"", {headers.ORIGINAL_GONE: "true"}, STREAM, step.activated_by)
        if lane is not None:
            on_lane = found is not None and _on_urgent_lane(found.subject)
            floor = lane if on_lane else main if found is not None else min(main, lane)
            if step.activated_by > floor:
                return False  # its consumer still holds it
        error = (
            "its message was given up by JetStream (max deliveries) while no actor heard the advisory; "
            "found by the unsettled-step sweep"
        )
        buried = await self._door.bury(
            Burial(
                original,
                DeadLetter(step.track, step.correlation_id, ERROR_TYPE, error, 0),
                user_id=step.user_id,
                workflow=step.workflow,
                finish_step=True,
                fence=step.attempts,
                attempt=step.attempts,
                details={"via": "unsettled_sweep", "stepFailed": True},
            )
        )
        if buried:
            log.warning("%s %s: %s", step.track, step.correlation_id, error)
        return buried


async def read_original(js: JetStreamContext, stream: str, seq: int) -> Original | None:
    """A message read back from its stream, or ``None`` when the stream holds it no more."""
    try:
        raw = await js.get_msg(stream, seq)
    except NotFoundError:
        return None
    return Original(
        raw.subject or "", raw.data or b"", headers.plain(raw.headers), stream, seq, time_us(raw.time)
    )


def _on_urgent_lane(subject: str) -> bool:
    parts = subject.split(".")
    return len(parts) == 4 and parts[2] == names.URGENT


def _identify(original: Original) -> tuple[str, str | None, str | None]:
    """(correlation ID, user ID, workflow) as the worker saw them; the poison fallback otherwise."""
    try:
        activation = decode(
            original.subject, original.data, original.headers, original.stream_seq, original.stored_us
        )
    except PoisonMessage:
        cid, _ = fallback_correlation_id(
            original.subject, original.headers, original.stream_seq, original.stored_us
        )
        return cid, None, None
    return activation.correlation_id, activation.user_id, activation.workflow
