"""The unsettled-step sweep and the urgent lane: a step the lane still holds is never taken for given up."""

from __future__ import annotations

import json

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from actors import Ledger
from actors.failures.advisories import UnsettledSweep
from actors.failures.door import DeadLetterDoor
from actors.ledger.runs import Runs
from foundation.jetstream.publisher import EventPublisher
from subjects import names
from tests.support.records import step_statuses
from tests.support.waiting import eventually


async def test_a_long_step_from_the_urgent_lane_is_not_swept(
    js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    """The track's own consumer passes the lane's message at once (its floor moves past it), while
    the lane still holds it unacked: the step is running, not given up. Once the lane, too, let it
    go (its floor passes it), the sweep settles it as before."""
    track = f"{unique}-t"
    lane = names.urgent_consumer(track)
    for durable, subjects in ((track, names.run_filters(track)), (lane, [names.urgent_filter(track)])):
        await js.add_consumer(
            "TRACKS",
            ConsumerConfig(durable_name=durable, filter_subjects=subjects, ack_policy=AckPolicy.EXPLICIT),
        )
    main_sub = await js.pull_subscribe_bind(durable=track, stream="TRACKS")
    lane_sub = await js.pull_subscribe_bind(durable=lane, stream="TRACKS")
    urgent = (
        await js.publish(names.trigger(track, f"{unique}-hi", "high"), json.dumps({"n": 1}).encode())
    ).seq
    await js.publish(names.run(track, f"{unique}-lo"), b'{"n": 2}')
    (low,) = await main_sub.fetch(1, timeout=5)
    await low.ack()
    (high,) = await lane_sub.fetch(1, timeout=5)  # held: a long step under way
    await pool.execute(
        "INSERT INTO track_steps (correlation_id, track_id, status, attempts, activated_by, updated_at) "
        "VALUES ($1, $2, 'running', 1, $3, now() - interval '1 hour')",
        f"{unique}-hi",
        track,
        urgent,
    )
    ledger = Ledger(pool)
    ledger.start()
    publisher = EventPublisher(js)
    runs = Runs(pool, publisher)
    runs.start()
    try:
        sweep = UnsettledSweep(js, ledger, DeadLetterDoor(ledger, publisher, runs), {track: 1.0})

        async def main_floor_passed() -> bool:
            info = await js.consumer_info("TRACKS", track)
            return info.ack_floor is not None and info.ack_floor.stream_seq > urgent

        await eventually(
            main_floor_passed, timeout=5, what="the track's own floor to pass the lane's message"
        )
        assert await sweep.sweep() == 0
        assert await step_statuses(pool, track) == {f"{unique}-hi": "running"}

        await high.term()  # as JetStream does when it gives up on it

        async def lane_floor_passed() -> bool:
            info = await js.consumer_info("TRACKS", lane)
            return info.ack_floor is not None and info.ack_floor.stream_seq >= urgent

        await eventually(lane_floor_passed, timeout=5, what="the lane's floor to pass it")
        assert await sweep.sweep() == 1
    finally:
        await runs.close()
        await ledger.close()
        for durable in (track, lane):
            await js.delete_consumer("TRACKS", durable)
    assert await step_statuses(pool, track) == {f"{unique}-hi": "failed"}
