"""Inboxes handled in nats.py's read loop: every message in order, and a failing handler is contained."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from foundation.jetstream.inbox import subscribe_inbox


async def test_a_handler_that_raises_is_logged_and_the_connection_reads_on(
    nc: NATS, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []
    done = asyncio.Event()

    def handle(msg: Msg) -> None:
        if msg.data == b"bad":
            raise RuntimeError("cannot handle this one")
        seen.append(msg.data)
        if msg.data == b"last":
            done.set()

    subject = f"_INBOX.{unique}"
    sub = await subscribe_inbox(nc, subject, handle)
    with caplog.at_level(logging.ERROR, logger="foundation.jetstream.inbox"):
        for body in (b"first", b"bad", b"second", b"last"):
            await nc.publish(subject, body)
        await asyncio.wait_for(done.wait(), 5)
    assert seen == [b"first", b"second", b"last"]
    assert "handling a message on _INBOX." in caplog.text and "cannot handle this one" in caplog.text
    assert nc.is_connected
    await sub.unsubscribe()
    await nc.publish(subject, b"after")  # no longer subscribed: nothing arrives
    await nc.flush()
    assert seen == [b"first", b"second", b"last"]
