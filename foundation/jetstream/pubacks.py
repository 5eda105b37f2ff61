"""PubAcks for pipelined JetStream publishes: one reply inbox, one future per publish.

nats.py's ``publish_async`` does the same, but per publish it also reads the OS random
source for a token, takes a semaphore and keeps a completion event, and per PubAck it
builds the ack through a generic response parser: a measurable share of a step's CPU
(``tracks bench``). Here a publish costs a counter, a future and the publish itself.
The inbox subscription is restored by nats.py after a reconnect; a PubAck lost meanwhile
ends in the caller's timeout (and a retry, de-duplicated by ``Nats-Msg-Id``).
"""

from __future__ import annotations

import asyncio
import itertools

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.errors import APIError, NoStreamResponseError

from foundation.jetstream.inbox import subscribe_inbox
from subjects.jsonwire import loads

__all__ = ["PubAckInbox"]

_NO_RESPONDERS = "503"
_SWEEP_EVERY = 4096


class PubAckInbox:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = ""
        self._sub: Subscription | None = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[api.PubAck]] = {}

    async def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> asyncio.Future[api.PubAck]:
        """Publish with a reply subject of our inbox; the future resolves with the PubAck."""
        if self._sub is None:
            self._prefix = self._nc.new_inbox()
            self._sub = await subscribe_inbox(self._nc, f"{self._prefix}.*", self._on_ack)
        n = next(self._tokens)
        if n % _SWEEP_EVERY == 0:  # futures cancelled by a timeout never see their PubAck
            self._waiting = {t: f for t, f in self._waiting.items() if not f.done()}
        token = str(n)
        future: asyncio.Future[api.PubAck] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        await self._nc.publish(subject, body, reply=f"{self._prefix}.{token}", headers=headers)
        return future

    def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[len(self._prefix) + 1 :], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(api.Header.STATUS) == _NO_RESPONDERS:
            future.set_exception(NoStreamResponseError())
            return
        try:
            resp = loads(msg.data)
        except ValueError as exc:
            future.set_exception(APIError(description=f"unreadable PubAck: {exc}"))
            return
        if "error" in resp:
            try:  # raises the error's class (nats.py's own publish_async lets it escape, and hangs)
                APIError.from_error(resp["error"])
            except APIError as exc:
                future.set_exception(exc)
            return
        future.set_result(
            api.PubAck(
                stream=resp["stream"],
                seq=resp["seq"],
                domain=resp.get("domain"),
                duplicate=resp.get("duplicate"),
            )
        )

    @property
    def pending(self) -> int:
        return len(self._waiting)
