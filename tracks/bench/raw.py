"""The baseline: chains of plain nats-py pull consumers, consume → publish next → ack.

No records, no tracing, no validation: what JetStream and nats-py cost on their own, with
the same batch size and PubAck-confirmed publishes as the runtime. The diamond's join is
an in-memory counter, i.e. with none of the runtime's durability or exactly-once guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from subjects import STREAM

__all__ = ["raw_chain", "raw_diamond"]

Route = Callable[[Msg], list[str]]


@contextlib.asynccontextmanager
async def raw_chain(nc: NATS, prefix: str, stages: int, *, batch: int = 256) -> AsyncIterator[str]:
    """Run ``stages`` consumers on ``tracks.<prefix>.s<i>.*``; yield the final subject filter."""
    routes: dict[str, tuple[list[str], Route]] = {}
    for i in range(stages):
        nxt = f"tracks.{prefix}.s{i + 1}" if i + 1 < stages else f"tracks.{prefix}.done"
        routes[f"{prefix}-s{i}"] = ([f"tracks.{prefix}.s{i}.*"], _forward_to(nxt))
    async with _stages(nc, routes, batch):
        yield f"tracks.{prefix}.done.*"


@contextlib.asynccontextmanager
async def raw_diamond(nc: NATS, prefix: str, *, batch: int = 256) -> AsyncIterator[str]:
    """A → {B, C} → D on ``tracks.<prefix>.a.*``; D joins both branches in memory."""
    seen: Counter[str] = Counter()

    def join(msg: Msg) -> list[str]:
        key = msg.subject.rsplit(".", 1)[1]
        seen[key] += 1
        if seen[key] < 2:
            return []
        del seen[key]
        return [f"tracks.{prefix}.done.{key}"]

    routes: dict[str, tuple[list[str], Route]] = {
        f"{prefix}-a": ([f"tracks.{prefix}.a.*"], lambda m: [f"tracks.{prefix}.{x}.{_key(m)}" for x in "bc"]),
        f"{prefix}-b": ([f"tracks.{prefix}.b.*"], _forward_to(f"tracks.{prefix}.jb")),
        f"{prefix}-c": ([f"tracks.{prefix}.c.*"], _forward_to(f"tracks.{prefix}.jc")),
        f"{prefix}-d": ([f"tracks.{prefix}.jb.*", f"tracks.{prefix}.jc.*"], join),
    }
    async with _stages(nc, routes, batch):
        yield f"tracks.{prefix}.done.*"


def _key(msg: Msg) -> str:
    return msg.subject.rsplit(".", 1)[1]


def _forward_to(prefix: str) -> Route:
    return lambda msg: [f"{prefix}.{_key(msg)}"]


@contextlib.asynccontextmanager
async def _stages(nc: NATS, routes: dict[str, tuple[list[str], Route]], batch: int) -> AsyncIterator[None]:
    js = nc.jetstream()
    stop = asyncio.Event()
    for name, (filters, _) in routes.items():
        await js.add_consumer(
            STREAM,
            ConsumerConfig(
                name=name,
                durable_name=name,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subjects=filters,
                max_ack_pending=4096,
            ),
        )
    tasks = [asyncio.create_task(_stage(nc, name, route, batch, stop)) for name, (_, route) in routes.items()]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name in routes:
            with contextlib.suppress(Exception):
                await js.delete_consumer(STREAM, name)


async def _stage(nc: NATS, durable: str, route: Route, batch: int, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM)

    async def forward(msgs: list[Msg]) -> None:
        """Publish what the batch produces pipelined, wait for every PubAck, then ack the inputs."""
        acks = []
        for msg in msgs:
            for subject in route(msg):
                acks.append(await js.publish_async(subject, msg.data, headers={"Nats-Msg-Id": subject}))
        await asyncio.gather(*acks)
        for msg in msgs:
            await msg.ack()

    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            await forward(msgs)
    finally:
        await sub.unsubscribe()
