"""Long steps: heartbeats hold the message, a redelivery never runs a step twice, time limits apply."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from foundation.connections import connect_nats
from foundation.settings import Settings
from tests.support.apps.actor_app import build_workflow, track_names
from tests.support.records import consumer_idle, event_counts, step_statuses, stream_subjects
from tests.support.servers import own_nats
from tests.support.waiting import chain_settled, count_logs, eventually


async def test_heartbeats_keep_a_step_longer_than_ack_wait_from_redelivery(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """Handlers run 2.5 s with an ack wait of 1 s: the runtime's heartbeats hold the messages, so
    JetStream delivers each exactly once."""
    wf = build_workflow(unique, sleep_s=2.5)
    work, _ = track_names(unique)
    tuned = settings.model_copy(update={"ack_wait_s": 1.0})
    async with Runtime([wf[work]], settings=tuned):
        client = TracksClient(js)
        cids = [(await client.trigger(work, {"n": n}))[0] for n in range(5)]

        async def done() -> bool:
            return (
                await count_logs(pool, work, "completed") >= 5 and await consumer_idle(js, work) is not None
            )

        await eventually(done, timeout=30, what="5 long steps")
        info = await js.consumer_info("TRACKS", work)
    assert info.delivered.consumer_seq == 5, "a message was redelivered while its step was running"
    assert await event_counts(pool, work, "started") == dict.fromkeys(cids, 1)
    assert await event_counts(pool, work, "completed") == dict.fromkeys(cids, 1)


async def test_a_redelivery_of_a_running_step_does_not_run_it_again(
    settings: Settings, pool: asyncpg.Pool, unique: str, tmp_path: Path
) -> None:
    """While 3 s handlers run, the nats-server is down long enough (1.5 s) for their ack wait (1 s)
    to run out, so JetStream redelivers them to the same actor as soon as it is back. The
    redeliveries must not start the still-running steps a second time: one ``started`` and one
    ``completed`` record per step, one completion event each."""
    wf = build_workflow(unique, sleep_s=3.0)
    work, nxt = track_names(unique)
    with own_nats(tmp_path) as server:
        tuned = settings.model_copy(update={"nats_url": server.url, "ack_wait_s": 1.0})
        nc = await connect_nats(tuned, server.url, name="test-long-steps")
        try:
            js = nc.jetstream()
            async with Runtime(list(wf), settings=tuned) as runtime:
                client = TracksClient(js)
                cids = [(await client.trigger(work, {"n": n}))[0] for n in range(5)]

                async def running() -> bool:
                    return await count_logs(pool, work, "started") >= 5

                await eventually(running, timeout=30, what="5 long steps to start")
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(1.5)  # the outage: longer than the ack wait
                await asyncio.to_thread(server.start)

                await chain_settled(
                    pool, js, (work, nxt), 5, timeout=40, what="5 long steps after the outage"
                )
                redelivered = runtime.workers[work].redeliveries_ignored
            assert redelivered > 0, "the outage did not cause redeliveries; the test proves nothing"
            for track in (work, nxt):
                assert await event_counts(pool, track, "started") == dict.fromkeys(cids, 1), track
                assert await event_counts(pool, track, "completed") == dict.fromkeys(cids, 1), track
            assert len(await stream_subjects(js, "TRACKS", f"tracks.{work}.completed.*")) == 5
        finally:
            await nc.close()


async def test_a_step_over_its_time_limit_is_retried_then_dead_lettered(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """TrackOptions(time_limit_s=0.2): a handler that would take 30 s is cancelled at 0.2 s; the
    timeout counts as a retryable failure (recorded), and after max_deliver=2 it is dead-lettered."""
    track = f"{unique}-slow"
    wf = Workflow(f"slow-{unique}")

    @wf.track(track, options=TrackOptions(time_limit_s=0.2, max_deliver=2))
    async def slow(ctx: TrackContext, payload: dict[str, object]) -> None:
        await asyncio.sleep(30)

    async with Runtime(list(wf), settings=settings):
        cid, _ = await TracksClient(js).trigger(track, {})

        async def dead() -> bool:
            return len(await stream_subjects(js, "DLQ", f"dlq.{track}.*")) >= 1

        await eventually(dead, timeout=30, what="the timed-out step to be dead-lettered")
    rows = await pool.fetch(
        "SELECT attempt, error_type, error FROM processing_logs "
        "WHERE track_id = $1 AND event_type = 'failed' ORDER BY occurred_at, id",
        track,
    )
    assert [(r["attempt"], r["error_type"]) for r in rows] == [(1, "StepTimeout"), (2, "StepTimeout")]
    assert all("exceeded its 0.2s time limit" in r["error"] for r in rows)
    assert await step_statuses(pool, track) == {cid: "failed"}
