"""Actors report their resources (CPU, RSS, open connections) like the scheduler does."""

from __future__ import annotations

import asyncio
import json

from actors import Runtime, TrackContext, Workflow


async def test_a_runtime_publishes_resource_snapshots(settings, pool, nc, unique):
    wf = Workflow(f"res-{unique}")

    @wf.track(f"res-{unique}")
    async def noop(ctx: TrackContext, payload: dict) -> dict:
        return payload

    got: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    async def on_snapshot(msg) -> None:
        if not got.done():
            got.set_result(json.loads(msg.data))

    sub = await nc.subscribe("tracksapi.metrics.actor.>", cb=on_snapshot)
    async with Runtime(list(wf), settings=settings.model_copy(update={"metrics_interval_s": 0.2})):
        snapshot = await asyncio.wait_for(got, 10)
    await sub.unsubscribe()
    assert snapshot["component"] == "actor"
    assert snapshot["rssBytes"] > 10_000_000
    assert snapshot["connections"] >= 2  # at least NATS and PostgreSQL
