"""The baseline: a chain of plain nats-py pull consumers, consume → publish next → ack.

No records, no tracing, no validation: what JetStream and nats-py cost on their own, with
the same batch size and the same PubAck-awaited publishes as the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from subjects import STREAM

__all__ = ["raw_chain"]


@contextlib.asynccontextmanager
async def raw_chain(nc: NATS, prefix: str, stages: int, *, batch: int = 256) -> AsyncIterator[str]:
    """Run ``stages`` consumers on ``tracks.<prefix>.s<i>.*``; yield the final subject filter."""
    js = nc.jetstream()
    stop = asyncio.Event()
    tasks = []
    for i in range(stages):
        name = f"{prefix}-s{i}"
        await js.add_consumer(STREAM, ConsumerConfig(name=name, durable_name=name, ack_policy=AckPolicy.EXPLICIT,
                                                     filter_subject=f"tracks.{prefix}.s{i}.*", max_ack_pending=4096))
        nxt = f"tracks.{prefix}.s{i + 1}" if i + 1 < stages else f"tracks.{prefix}.done"
        tasks.append(asyncio.create_task(_stage(nc, name, nxt, batch, stop)))
    try:
        yield f"tracks.{prefix}.done.*"
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for i in range(stages):
            with contextlib.suppress(Exception):
                await js.delete_consumer(STREAM, f"{prefix}-s{i}")


async def _stage(nc: NATS, durable: str, next_prefix: str, batch: int, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM)

    async def forward(msgs: list[Msg]) -> None:
        """Publish the whole batch pipelined, wait for every PubAck, then ack the inputs."""
        acks = []
        for msg in msgs:
            key = msg.subject.rsplit(".", 1)[1]
            acks.append(await js.publish_async(f"{next_prefix}.{key}", msg.data,
                                               headers={"Nats-Msg-Id": f"{next_prefix}.{key}"}))
        await asyncio.gather(*acks)
        for msg in msgs:
            await msg.ack()

    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=0.5)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            await forward(msgs)
    finally:
        await sub.unsubscribe()
