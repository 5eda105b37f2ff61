"""Each track's durable consumer is created, or reconciled when it exists with another config."""

from __future__ import annotations

import asyncpg
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors import Runtime, TrackContext, TracksClient, Workflow
from actors.runtime.process import HANDBACK_ALLOWANCE
from foundation.settings import Settings
from tests.support.apps.workflows import passthrough_pair
from tests.support.records import step_statuses
from tests.support.waiting import count_logs, eventually


async def test_a_drifted_consumer_is_updated_at_start(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A durable left behind with other ack_wait / max_deliver / max_ack_pending and a narrower
    filter gets the runtime's config when the runtime starts, and then consumes with it."""
    up, down = f"{unique}-up", f"{unique}-down"
    wf = passthrough_pair(f"consumer-{down}", up, down)
    await js.add_consumer(
        "TRACKS",
        ConsumerConfig(
            name=down,
            durable_name=down,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=90,
            max_deliver=11,
            max_ack_pending=7,
            filter_subjects=[f"tracks.{down}.run"],
        ),
    )
    tuned = settings.model_copy(update={"ack_wait_s": 7.0, "max_deliver": 4, "max_ack_pending": 300})
    async with Runtime(list(wf), settings=tuned):
        info = await js.consumer_info("TRACKS", down)
        assert info.config.ack_wait == 7.0
        assert info.config.max_deliver == 4 + HANDBACK_ALLOWANCE  # room for hand-backs; tries decide
        assert info.config.max_ack_pending == 300
        assert sorted(info.config.filter_subjects or []) == sorted(
            [f"tracks.{down}.run", f"tracks.{down}.run.*", f"tracks.{up}.completed.*"]
        )
        # the widened filter is live: the upstream's completion reaches the reconciled consumer
        cid, _ = await TracksClient(js).trigger(up, {"k": 1})

        async def downstream_done() -> bool:
            return await count_logs(pool, down, "completed") >= 1

        await eventually(downstream_done, timeout=30, what="the reconciled consumer to run its track")
    assert await step_statuses(pool, down) == {cid: "completed"}


async def test_a_consumer_that_cannot_be_updated_is_reported(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    """A durable whose ack policy differs cannot be updated in place: start fails with a message
    naming the consumer and how to recreate it, instead of consuming with the wrong config."""
    track = f"{unique}-stuck"
    wf = Workflow(f"stuck-{unique}")

    @wf.track(track)
    async def handler(ctx: TrackContext, payload: dict[str, object]) -> None:
        return None

    await js.add_consumer(
        "TRACKS",
        ConsumerConfig(
            name=track,
            durable_name=track,
            ack_policy=AckPolicy.ALL,
            filter_subject=f"tracks.{track}.run",
        ),
    )
    runtime = Runtime(list(wf), settings=settings)
    try:
        with pytest.raises(RuntimeError, match=f"consumer TRACKS/{track} exists with a config that cannot"):
            await runtime.start()
    finally:
        await runtime.shutdown()
    info = await js.consumer_info("TRACKS", track)
    assert info.config.ack_policy == AckPolicy.ALL
