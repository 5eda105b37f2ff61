"""An optional contender: the same chain on FastStream's JetStream pull subscribers.

Each stage is a durable pull subscriber on ``tracks.<prefix>.s<i>.*`` that publishes the body
to the next stage (JetStream publish, PubAck awaited, same ``Nats-Msg-Id`` as the baseline) and
is acked by FastStream when the handler returns. No records, no tracing. Installed with the
``tracks[faststream]`` extra; :func:`available` says why it is skipped when it is not.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import AsyncIterator
from typing import Any

from subjects import STREAM, headers

__all__ = ["MISSING", "available", "faststream_chain"]

MISSING = "FastStream comparison skipped: install it with `pip install 'tracks[faststream]'`"


def available() -> bool:
    return importlib.util.find_spec("faststream") is not None and importlib.util.find_spec("nats") is not None


@contextlib.asynccontextmanager
async def faststream_chain(
    nats_url: str, prefix: str, stages: int, *, batch: int = 256
) -> AsyncIterator[str]:
    """Run ``stages`` FastStream subscribers on ``tracks.<prefix>.s<i>.*``; yield the final filter."""
    fs: Any = importlib.import_module("faststream")
    fsn: Any = importlib.import_module("faststream.nats")
    broker = fsn.NatsBroker(nats_url, logger=None)
    stream = fsn.JStream(STREAM, declare=False)
    for i in range(stages):
        nxt = f"tracks.{prefix}.s{i + 1}" if i + 1 < stages else f"tracks.{prefix}.done"
        broker.subscriber(
            f"tracks.{prefix}.s{i}.*",
            stream=stream,
            durable=f"{prefix}-s{i}",
            pull_sub=fsn.PullSub(batch_size=batch, timeout=0.5),
            config=fsn.ConsumerConfig(max_ack_pending=4096),
        )(_forward(broker, fs, nxt))
    await broker.start()
    try:
        yield f"tracks.{prefix}.done.*"
    finally:
        await broker.stop()


def _forward(broker: Any, fs: Any, nxt: str) -> Any:
    message = fs.Context("message")  # FastStream injects the message through this default

    async def step(body: Any, msg: Any = message) -> None:
        subject = f"{nxt}.{msg.raw_message.subject.rsplit('.', 1)[1]}"
        await broker.publish(body, subject, stream=STREAM, headers={headers.MSG_ID: subject})

    return step
