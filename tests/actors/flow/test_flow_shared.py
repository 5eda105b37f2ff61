"""A named limit shared by several tracks, and limits held through a NATS restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TrackOptions, Workflow
from actors.flow import Limit
from foundation.connections import connect_nats
from foundation.settings import Settings
from subjects import names
from tests.support.servers import own_nats
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("migrated")


async def test_two_tracks_draw_from_one_named_limit(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    Limit(f"freee-{unique}", max_running=1)  # defined once; the tracks name it
    wf = Workflow(f"books-{unique}")
    running, peak, done = [0], [0], []

    async def call_api(ctx: TrackContext, payload: dict[str, int]) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.03)
        running[0] -= 1
        done.append(payload["n"])

    shared = TrackOptions(limits=[f"freee-{unique}"], concurrency=4)
    wf.track(f"post-{unique}", options=shared)(call_api)
    wf.track(f"fetch-{unique}", options=shared)(call_api)
    for n in range(8):
        for track in (f"post-{unique}", f"fetch-{unique}"):
            await js.publish(names.run(track, f"{track}-{n}"), json.dumps({"n": n}).encode())
    async with Runtime(list(wf), settings=settings):
        await eventually(lambda: _at_least(done, 16), timeout=30, what="16 steps")
    assert peak[0] == 1, f"{peak[0]} calls at once drawing from a limit of 1"


@pytest.mark.slow  # restarts a nats-server
async def test_limits_hold_through_a_nats_restart(settings: Settings, unique: str, tmp_path: Path) -> None:
    track = f"restart-{unique}"
    wf = Workflow(track)
    running, peak, done = [0], [0], set()

    @wf.track(track, options=TrackOptions(max_running=2, concurrency=8))
    async def work(ctx: TrackContext, payload: dict[str, int]) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.05)
        running[0] -= 1
        done.add(payload["n"])

    with own_nats(tmp_path) as server:
        tuned = settings.model_copy(update={"nats_url": server.url, "ack_wait_s": 2.0})
        async with Runtime(list(wf), settings=tuned):
            nc = await connect_nats(tuned, server.url, name="test-flow-restart")
            js = nc.jetstream()
            for n in range(60):
                await js.publish(names.run(track, f"{track}-{n}"), json.dumps({"n": n}).encode())
            await nc.close()
            await eventually(lambda: _at_least(done, 10), timeout=30, what="10 steps before the restart")
            await asyncio.to_thread(server.restart)
            await eventually(lambda: _at_least(done, 60), timeout=60, what="all 60 steps after the restart")
    assert peak[0] <= 2, f"{peak[0]} ran at once after the restart (max_running=2)"


async def _at_least(items: list[int] | set[int], n: int) -> bool:
    return len(items) >= n
