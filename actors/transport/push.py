"""Push delivery: the server sends a track's messages to a queue group of its replicas.

Pull (:class:`~actors.transport.pull.PullSource`) is the default: a worker asks for what it can
take. Push suits low-latency tracks with steady traffic: no fetch round trip, the server
delivers as soon as a message is stored. :class:`PushSource` gives the worker the same
``start`` / ``fetch(n)`` / ``close`` interface, so the worker keeps owning ack, nak and term.

The durable consumer delivers to ``_TRACKS_PUSH.<track>`` (outside ``tracks.>``, so the
stream never captures its own deliveries) with the track's name as the deliver group:
replicas share the work, each message goes to one of them. How much is in flight is bounded
twice: ``max_ack_pending`` on the server, and a bounded local queue whose subscription
callback blocks when full, which holds back the flow-control replies, so the server
pauses instead of overrunning a slow replica. Idle heartbeats let nats-py notice a silent
consumer; after a reconnect nats-py re-subscribes and the server resumes delivering.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import suppress

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import APIError, NotFoundError

from actors.transport.pull import ConsumerSpec
from subjects import STREAM, names

__all__ = ["DELIVER_PREFIX", "PushSource", "push_config", "reconcile_push"]

log = logging.getLogger(__name__)

DELIVER_PREFIX = names.PUSH_DELIVER_PREFIX


def push_config(spec: ConsumerSpec, *, idle_heartbeat_s: float = 5.0) -> ConsumerConfig:
    """The pull config of ``spec``, turned into a push consumer for a queue group."""
    config = spec.config()
    config.max_waiting = None  # a pull-only setting; the server refuses it on push consumers
    config.deliver_subject = f"{DELIVER_PREFIX}.{spec.track}"
    config.deliver_group = spec.track
    config.flow_control = True
    config.idle_heartbeat = idle_heartbeat_s
    config.description = f"tracks actor {spec.track} (push)"
    return config


async def reconcile_push(js: JetStreamContext, spec: ConsumerSpec, config: ConsumerConfig) -> None:
    """Create the durable, or update it in place when its config drifted (like ``consumer.reconcile``)."""
    try:
        await js.add_consumer(STREAM, config)
    except APIError as exc:
        raise RuntimeError(
            f"push consumer {STREAM}/{spec.track} cannot be created or updated in place ({exc}); a pull "
            f"consumer cannot become a push one: inspect it with `nats consumer info {STREAM} {spec.track}` "
            "and delete it to recreate"
        ) from exc


class PushSource:
    """Messages pushed to this replica, held until the worker fetches them.

    Held messages get ``in_progress`` heartbeats like running ones: the server may push up
    to ``max_ack_pending`` messages, more than the worker's concurrency, and a message that
    waits here past ``ack_wait`` would otherwise be redelivered while it is still queued.
    """

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        spec: ConsumerSpec,
        *,
        fetch_timeout_s: float,
        idle_heartbeat_s: float = 5.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self.spec = spec
        self._fetch_timeout_s = fetch_timeout_s
        self._config = push_config(spec, idle_heartbeat_s=idle_heartbeat_s)
        self._held: deque[tuple[Msg, float]] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._sub: JetStreamContext.PushSubscription | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._empty_fetches = 0
        self.rebinds = 0

    async def start(self) -> None:
        await reconcile_push(self._js, self.spec, self._config)
        await self._bind()
        if self._heartbeats is None:
            self._heartbeats = asyncio.create_task(self._heartbeat_loop(), name=f"{self.spec.track}-held")

    async def _bind(self) -> None:
        self._sub = await self._js.subscribe_bind(
            STREAM,
            self._config,
            self.spec.track,
            cb=self._deliver,
            manual_ack=True,
            pending_msgs_limit=max(self.spec.max_ack_pending * 2, 1024),
        )

    async def _deliver(self, msg: Msg) -> None:
        """Called by nats-py per message, in order; waiting here holds back flow-control replies."""
        while len(self._held) >= self.spec.max_ack_pending:
            self._room.clear()
            await self._room.wait()
        self._held.append((msg, time.monotonic()))
        self._arrived.set()

    async def fetch(self, batch: int) -> list[Msg]:
        """Up to ``batch`` delivered messages; waits up to ``fetch_timeout_s`` for the first."""
        if not self._held:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=self._fetch_timeout_s)
            except TimeoutError:
                self._empty_fetches += 1
                if self._empty_fetches % 5 == 0:
                    await self._check_health()
                return []
        self._empty_fetches = 0
        msgs = [self._held.popleft()[0] for _ in range(min(batch, len(self._held)))]
        self._room.set()
        return msgs

    async def _heartbeat_loop(self) -> None:
        every = max(self.spec.ack_wait_s / 3, 0.2)
        while True:
            await asyncio.sleep(every)
            cutoff = time.monotonic() - every
            for msg, since in list(self._held):
                if since < cutoff:
                    try:
                        await msg.in_progress()
                    except Exception as exc:
                        log.debug("heartbeat for a held message failed: %s", exc)

    async def _check_health(self) -> None:
        """Nothing arrives: is the consumer still there (someone may have deleted it)?"""
        try:
            await self._js.consumer_info(STREAM, self.spec.track, timeout=2)
        except NotFoundError:
            log.warning("push consumer %s vanished; re-creating it", self.spec.track)
            try:
                await self._unsubscribe()
                await reconcile_push(self._js, self.spec, self._config)
                await self._bind()
                self.rebinds += 1
            except Exception as exc:
                log.warning("re-creating push consumer %s failed (%s); will retry", self.spec.track, exc)
        except Exception as exc:
            log.debug("consumer_info for %s failed: %s", self.spec.track, exc)

    async def _unsubscribe(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # the connection may already be closing
                log.debug("unsubscribe of push subscription failed: %s", exc)
            self._sub = None

    async def close(self) -> None:
        """Stop receiving; messages delivered here but never fetched go back to the server now."""
        await self._unsubscribe()
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            with suppress(asyncio.CancelledError):
                await self._heartbeats
            self._heartbeats = None
        while self._held:
            msg, _ = self._held.popleft()
            with suppress(Exception):
                await msg.nak()
