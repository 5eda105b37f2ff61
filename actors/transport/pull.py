"""A track's durable pull consumer: its config, create-or-reconcile, and a fetch that heals.

``pull_subscribe`` keeps an existing durable's old config silently, so the consumer is
created or updated explicitly (``CONSUMER.CREATE`` with a name updates in place on
nats-server >= 2.10) and the subscription is then bound to it.

A pull subscription can go silent after a server restart (nats.py #504). :class:`PullSource`
re-binds after every reconnect, and when fetches stay empty while the consumer reports
pending messages (or has vanished) it re-creates the consumer and the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

import nats.errors
import nats.js.api
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from actors.track import Track
from foundation.jetstream.inbox import subscribe_inbox
from subjects import STREAM, SubjectKind, names

__all__ = ["ConsumerSpec", "MessageSource", "PullSource"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    track: str
    filter_subjects: tuple[str, ...]
    ack_wait_s: float
    max_deliver: int
    max_ack_pending: int

    @classmethod
    def for_track(
        cls, track: Track, *, ack_wait_s: float, max_deliver: int, max_ack_pending: int
    ) -> ConsumerSpec:
        filters = names.run_filters(track.name) + [
            f"{names.ROOT}.{upstream}.{SubjectKind.COMPLETED}.*" for upstream in track.after
        ]
        return cls(track.name, tuple(filters), ack_wait_s, max_deliver, max_ack_pending)

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.track,
            durable_name=self.track,
            description=f"tracks actor {self.track}",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subjects=list(self.filter_subjects),
            max_waiting=512,
        )


async def reconcile(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Create the durable, or update it in place when its config drifted."""
    try:
        await js.add_consumer(STREAM, spec.config())
    except APIError as exc:
        raise RuntimeError(
            f"consumer {STREAM}/{spec.track} exists with a config that cannot be updated in place ({exc}); "
            f"inspect it with `nats consumer info {STREAM} {spec.track}` and delete it to recreate"
        ) from exc


class MessageSource(Protocol):
    """What the worker consumes: :class:`PullSource` or :class:`~actors.transport.push.PushSource`."""

    spec: ConsumerSpec

    async def start(self) -> None: ...

    async def fetch(self, batch: int) -> list[Msg]: ...

    async def close(self) -> None: ...


class PullSource:
    """Fetch batches for one track; survives server restarts without an actor restart.

    Each fetch is one JetStream pull request (``batch``, ``expires``, ``no_wait``) answered
    on this source's own inbox: the server returns what is available at once, or waits up
    to ``expires`` for the first message, and ends the request with a status (404 / 408,
    409 when the consumer changed) unless the batch filled. nats.py's ``fetch`` costs a
    task, a ``wait_for`` and a UUID per message it hands out; here a message costs an
    append. A request is never left open once a fetch returned, so nothing is delivered
    to a worker that stopped fetching; a message that still arrives late (a status lost
    in a reconnect) is kept for the next fetch.
    """

    def __init__(self, nc: NATS, js: JetStreamContext, spec: ConsumerSpec, *, fetch_timeout_s: float) -> None:
        self._nc = nc
        self._js = js
        self.spec = spec
        self._fetch_timeout_s = fetch_timeout_s
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{spec.track}"
        self._sub: Subscription | None = None
        self._inbox = ""
        self._received: list[Msg] = []
        self._wanted = 0
        self._answered = asyncio.Event()
        self._reconnects_seen = 0
        self._empty_fetches = 0
        self.rebinds = 0

    async def start(self) -> None:
        await reconcile(self._js, self.spec)
        await self._bind()

    async def _bind(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # the old inbox may already be gone with its connection
                log.debug("unsubscribe of stale pull inbox failed: %s", exc)
        self._inbox = self._nc.new_inbox()
        self._sub = await subscribe_inbox(self._nc, self._inbox, self._on_reply)
        self._reconnects_seen = self._nc.stats["reconnects"]
        self._empty_fetches = 0

    def _on_reply(self, msg: Msg) -> None:
        """A delivery (it has an ack subject) or the status that ends the request."""
        if msg.reply:
            self._received.append(msg)
            if len(self._received) >= self._wanted:
                self._answered.set()
            return
        status = (msg.headers or {}).get(nats.js.api.Header.STATUS)
        if status == "409":
            description = (msg.headers or {}).get(nats.js.api.Header.DESCRIPTION)
            log.info("pull request for %s ended: 409 %s", self.spec.track, description)
        self._answered.set()

    async def fetch(self, batch: int) -> list[Msg]:
        """Up to ``batch`` messages; ``[]`` when none arrived in time or NATS is away."""
        try:
            if self._sub is None or self._nc.stats["reconnects"] != self._reconnects_seen:
                await self._recover("connection was re-established")
                if self._sub is None:
                    return []
            if not self._received:
                await self._request(batch)
        except (
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.NoServersError,
            nats.errors.StaleConnectionError,
            nats.errors.OutboundBufferLimitError,
            OSError,
        ) as exc:
            log.warning("fetch for %s failed (%s: %s); retrying", self.spec.track, type(exc).__name__, exc)
            await asyncio.sleep(0.5)
            return []
        if not self._received:
            self._empty_fetches += 1
            if self._empty_fetches % 5 == 0:
                await self._check_health()
            return []
        self._empty_fetches = 0
        msgs, self._received = self._received[:batch], self._received[batch:]
        return msgs

    async def _request(self, batch: int) -> None:
        """One pull request, until its answer ended (or a little past its expiry: a lost status)."""
        self._wanted = batch
        self._answered.clear()
        expires_ns = int(self._fetch_timeout_s * 1e9)
        body = b'{"batch":%d,"expires":%d,"no_wait":true}' % (batch, expires_ns)
        await self._nc.publish(self._next_subject, body, reply=self._inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), self._fetch_timeout_s + 1.0)

    async def _check_health(self) -> None:
        """Nothing arrives: is there really nothing, or did the subscription go deaf?"""
        try:
            info = await self._js.consumer_info(STREAM, self.spec.track, timeout=2)
        except NotFoundError:
            await self._recover("consumer vanished")
            return
        except Exception as exc:
            log.debug("consumer_info for %s failed: %s", self.spec.track, exc)
            return
        if info.num_pending and info.num_ack_pending < self.spec.max_ack_pending:
            await self._recover(f"{info.num_pending} pending but fetches return nothing")

    async def _recover(self, why: str) -> None:
        log.warning("re-binding pull consumer %s: %s", self.spec.track, why)
        try:
            await reconcile(self._js, self.spec)
            await self._bind()
            self.rebinds += 1
        except Exception as exc:
            log.warning("re-binding %s failed (%s); will retry", self.spec.track, exc)
            self._sub = None
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        """Stop receiving; messages received but not fetched go back at once (nak)."""
        left, self._received = self._received, []
        for msg in left:
            with contextlib.suppress(Exception):
                await msg.nak()
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe failed on close: %s", exc)
            self._sub = None
