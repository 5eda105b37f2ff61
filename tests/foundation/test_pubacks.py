"""The PubAck inbox behind every event publish: acks, duplicates, errors, no stream, lost acks."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from foundation.jetstream.pubacks import _SWEEP_EVERY, PubAckInbox
from subjects import STREAM, headers


async def test_acks_duplicates_and_stream_errors_reach_the_right_publish(
    nc: NATS, js: JetStreamContext, unique: str
) -> None:
    inbox = PubAckInbox(nc)
    subject = f"tracks.{unique}.run.one"
    first = await inbox.publish(subject, b"{}", {headers.MSG_ID: f"{unique}:1"})
    again = await inbox.publish(subject, b"{}", {headers.MSG_ID: f"{unique}:1"})
    wrong = await inbox.publish(subject, b"{}", {"Nats-Expected-Stream": "NOT-TRACKS"})
    ack, dup = await first, await again
    assert ack.stream == STREAM and ack.seq > 0 and not ack.duplicate
    assert dup.duplicate and dup.seq == ack.seq
    with pytest.raises(APIError, match="expected stream does not match"):
        await asyncio.wait_for(wrong, 5)
    assert inbox.pending == 0


async def test_a_subject_no_stream_holds_is_a_no_responders_error(nc: NATS, unique: str) -> None:
    inbox = PubAckInbox(nc)
    future = await inbox.publish(f"nowhere.{unique}", b"{}", {})
    with pytest.raises(NoStreamResponseError):
        await asyncio.wait_for(future, 5)


async def test_futures_given_up_on_are_swept(nc: NATS, js: JetStreamContext, unique: str) -> None:
    """A publish whose caller timed out (cancelled its future) leaves nothing behind for long."""
    inbox = PubAckInbox(nc)
    inbox._tokens = iter(range(1, 10**9))  # type: ignore[assignment]  # start past the sweep point
    abandoned = await inbox.publish(f"nowhere.{unique}", b"{}", {})
    abandoned.cancel()
    inbox._tokens = iter(range(_SWEEP_EVERY, 10**9))  # type: ignore[assignment]
    kept = await inbox.publish(f"tracks.{unique}.run.two", b"{}", {})
    assert inbox.pending <= 1
    await kept
    assert inbox.pending == 0
