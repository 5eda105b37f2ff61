"""A track's urgent lane: high-priority triggers in their own consumer, pulled first.

Priority inside one consumer only orders what one fetch brought (:mod:`actors.runtime.priority`):
behind a backlog of thousands of low-priority messages a high-priority one waits until the
backlog ahead of it in the stream has been fetched. So a high-priority trigger goes to its own
subject, ``tracks.<track>.urgent.<cid>`` (:func:`subjects.names.trigger`), consumed by its own
durable, ``<track>~urgent``, and :class:`LanedSource` pulls that lane before the track's main
consumer whenever it may hold something.

Cost when nobody sends urgent work: one flag test per fetch. The lane's consumer is created only
once it is needed (most tracks never get one): when a plain NATS subscription to the lane's subject
sees a message, or at start when the consumer exists already or the stream holds messages on the
lane. While the lane is open it is pulled (``no_wait``: an empty lane answers at once) after each
signal and every ``recheck_s``; a fetch that found messages is followed by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors.transport.pull import ConsumerSpec, MessageSource, PullSource
from subjects import STREAM, names

__all__ = ["LanedSource"]

log = logging.getLogger(__name__)


class _LanePull(PullSource):
    """A pull source whose fetch never waits: ``no_wait`` without ``expires`` (empty: 404 at once)."""

    async def _request(self, batch: int) -> None:
        self._wanted = batch
        self._answered.clear()
        await self._nc.publish(self._next_subject, b'{"batch":%d,"no_wait":true}' % batch, reply=self._inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), self._fetch_timeout_s + 1.0)


class LanedSource:
    """A :class:`MessageSource`: ``main`` (the track's consumer) plus its urgent lane."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        main: MessageSource,
        *,
        fetch_timeout_s: float,
        recheck_s: float = 5.0,
    ) -> None:
        self.spec = main.spec
        self._nc = nc
        self._js = js
        self._main = main
        track = main.spec.track
        self._lane_spec = ConsumerSpec(
            names.urgent_consumer(track),
            (names.urgent_filter(track),),
            main.spec.ack_wait_s,
            main.spec.max_deliver,
            main.spec.max_ack_pending,
        )
        self._fetch_timeout_s = fetch_timeout_s
        self._recheck_s = recheck_s
        self._lane: _LanePull | None = None
        self._signal: Subscription | None = None
        self._urgent = False
        """The lane may hold something: pull it before the main consumer."""
        self._wanted = False
        """The lane is in use (its consumer exists or is to be made): looked at every ``recheck_s``."""
        self._checked_at = 0.0
        self.urgent_fetched = 0

    @property
    def rebinds(self) -> int:
        return int(getattr(self._main, "rebinds", 0)) + (self._lane.rebinds if self._lane is not None else 0)

    @property
    def lane_open(self) -> bool:
        return self._lane is not None

    async def start(self) -> None:
        await self._main.start()
        self._signal = await self._nc.subscribe(names.urgent_filter(self.spec.track), cb=self._signalled)
        self._urgent = self._wanted = await self._lane_in_use()

    async def _signalled(self, _msg: Msg) -> None:
        self._urgent = self._wanted = True

    async def _lane_in_use(self) -> bool:
        """At start: does the lane's consumer exist, or does the stream hold urgent triggers for it?"""
        try:
            await self._js.consumer_info(STREAM, self._lane_spec.track)
            return True
        except NotFoundError:
            pass
        except Exception as exc:  # a cluster electing a leader: the signal still opens the lane
            log.debug("urgent lane of %s: consumer info failed: %s", self.spec.track, exc)
            return False
        try:
            info = await self._js.stream_info(STREAM, subjects_filter=names.urgent_filter(self.spec.track))
        except Exception as exc:
            log.debug("urgent lane of %s: stream info failed: %s", self.spec.track, exc)
            return False
        return bool(info.state.subjects)

    async def fetch(self, batch: int) -> list[Msg]:
        if self._wanted and not self._urgent and time.monotonic() - self._checked_at > self._recheck_s:
            self._urgent = True  # a signal may have been lost (a reconnect): look anyway, now and then
        if self._urgent:
            self._urgent = False  # before the fetch: a signal during it asks again
            msgs = await self._fetch_urgent(batch)
            if msgs:
                self._urgent = True  # there may be more
                self.urgent_fetched += len(msgs)
                return msgs
        return await self._main.fetch(batch)

    async def _fetch_urgent(self, batch: int) -> list[Msg]:
        self._checked_at = time.monotonic()
        if self._lane is None:
            lane = _LanePull(self._nc, self._js, self._lane_spec, fetch_timeout_s=self._fetch_timeout_s)
            try:
                await lane.start()
            except Exception as exc:
                log.warning(
                    "urgent lane of %s could not be opened (%s); retrying in %.0f s",
                    self.spec.track,
                    exc,
                    self._recheck_s,
                )
                return []
            log.info("track %s: urgent lane open (consumer %s)", self.spec.track, self._lane_spec.track)
            self._lane = lane
        return await self._lane.fetch(batch)

    async def close(self) -> None:
        if self._signal is not None:
            with contextlib.suppress(Exception):
                await self._signal.unsubscribe()
            self._signal = None
        if self._lane is not None:
            await self._lane.close()
        await self._main.close()
