"""Rolling restarts hand back what each replica fetched but had not started: that must never use up a
message's tries, however often it happens (the ledger counts tries; JetStream counts deliveries)."""

from __future__ import annotations

import asyncio

import asyncpg
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TrackOptions, Workflow
from foundation.settings import Settings
from tests.support.records import step_statuses, stream_subjects


async def test_six_restarts_with_a_backlog_dead_letter_nothing(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """max_deliver=2, one step at a time, 40 messages fetched ahead: each of six shutdowns hands the
    look-ahead back, so some messages are delivered far more than twice without ever starting."""
    track = f"{unique}-slow"
    wf = Workflow(f"wf-{unique}")
    deliveries: list[int] = []

    @wf.track(track, options=TrackOptions(max_deliver=2, concurrency=1, fetch_batch=40))
    async def slow(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        deliveries.append(ctx.deliveries)
        await asyncio.sleep(0.05)
        return payload

    quick = settings.model_copy(update={"shutdown_grace_s": 5.0})
    cids = [f"{unique}-{n}" for n in range(40)]
    for cid in cids:
        await js.publish(f"tracks.{track}.run.{cid}", b"{}")
    for _ in range(6):
        async with Runtime(list(wf), settings=quick):
            await asyncio.sleep(0.3)
    async with Runtime(list(wf), settings=quick):
        for _ in range(200):
            if len([s for s in (await step_statuses(pool, track)).values() if s == "completed"]) == len(cids):
                break
            await asyncio.sleep(0.1)
    assert await step_statuses(pool, track) == dict.fromkeys(cids, "completed")
    assert await stream_subjects(js, "DLQ", f"dlq.{track}.*") == {}
    assert max(deliveries) > 2, deliveries  # started after more deliveries than max_deliver: handed back
