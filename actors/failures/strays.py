"""Messages on ``tracks.<track>.run...`` that no track's consumer can ever take: dead-lettered at once.

A track consumes ``tracks.<track>.run`` and ``tracks.<track>.run.<cid>``, where a correlation ID
is one subject token (``[A-Za-z0-9_-]{1,128}``). The TRACKS stream stores all of ``tracks.>``,
so ``tracks.gmail.run.a.b`` (a correlation ID with a dot) would be acknowledged to its publisher,
stored, and never consumed. The durable consumer ``tracks-unrouted`` (one for every runtime,
filter ``tracks.*.run.*.>``) takes such messages and dead-letters each on its first delivery,
through the one door, with a reason that names the subject.

Triggers of a track that no actor has started yet (``tracks.nosuch.run``) are not strays: they
wait in the stream (for ``TRACKS_STREAM_MAX_AGE_S``) for the track's first actor, whose durable
consumer starts from the beginning of the stream.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actors.failures.dead_letter import DeadLetter, Original
from actors.failures.door import Burial, DeadLetterDoor
from actors.transport.decode import derived_cid, stored_at_us
from actors.transport.pull import ConsumerSpec, PullSource
from subjects import check_token, names

__all__ = ["CONSUMER", "FILTER", "StrayCatcher"]

log = logging.getLogger(__name__)

CONSUMER = names.UNROUTED_CONSUMER
"""The durable consumer's name (reserved: no track may be called this)."""
FILTER = names.unrouted_filter()
_UNROUTED_TRACK = "unrouted"


class StrayCatcher:
    def __init__(
        self, nc: NATS, js: JetStreamContext, door: DeadLetterDoor, *, fetch_timeout_s: float = 5.0
    ) -> None:
        spec = ConsumerSpec(CONSUMER, (FILTER,), ack_wait_s=30.0, max_deliver=20, max_ack_pending=256)
        self._source = PullSource(nc, js, spec, fetch_timeout_s=fetch_timeout_s)
        self._door = door
        self.caught = 0

    async def start(self) -> None:
        await self._source.start()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await self._source.fetch(64)
            except Exception as exc:  # NATS away: the source heals; try again shortly
                log.debug("unrouted messages: fetch failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                try:
                    await self._bury(msg)
                except Exception:
                    log.exception("could not dead-letter the unroutable message on %s", msg.subject[:200])

    async def close(self) -> None:
        await self._source.close()

    async def _bury(self, msg: Msg) -> None:
        meta = msg.metadata
        parts = msg.subject.split(".")
        try:
            track = check_token(parts[1], "track")
        except (ValueError, IndexError):
            track = _UNROUTED_TRACK
        cid = derived_cid(meta.sequence.stream, stored_at_us(msg.reply))
        error = (
            f"no track consumes {msg.subject[:300]!r}: a correlation ID is one subject token of letters, "
            "digits, '_' or '-' (tracks.<track>.run.<cid>)"
        )
        await self._door.bury(
            Burial(
                Original.of(msg),
                DeadLetter(track, cid, "UnroutableSubject", error, meta.num_delivered),
                attempt=meta.num_delivered,
                details={"subject": msg.subject[:300], "unroutable": True},
                announce=False,
                fail_run=False,
                ran=False,
            )
        )
        self.caught += 1
        log.warning("%s", error)
        await msg.term()
