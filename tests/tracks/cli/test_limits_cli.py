"""``tracks limits``: a limit's use and queue, as a runtime holds them."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TrackOptions, Workflow
from foundation.settings import Settings
from subjects import names
from tests.conftest import Servers
from tests.support.cli import run_tracks
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("migrated")


async def test_limits_shows_use_and_queue(
    servers: Servers, settings: Settings, js: JetStreamContext, unique: str
) -> None:
    track = f"shown-{unique}"
    wf = Workflow(track)
    release = asyncio.Event()
    started: list[int] = []

    @wf.track(track, options=TrackOptions(max_running=1, rate_limit="100/m", ack_wait_s=1.2))
    async def work(ctx: TrackContext, payload: dict[str, int]) -> None:
        started.append(payload["n"])
        await release.wait()

    for n in range(3):
        await js.publish(names.run(track, f"c{n}"), json.dumps({"n": n}).encode())
    async with Runtime(list(wf), settings=settings):
        await eventually(lambda: _started(started), timeout=15, what="the first step")
        await asyncio.sleep(0.8)  # a lease renewal records the queue
        result = await run_tracks(servers, "limits", "--json")
        plain = await run_tracks(servers, "limits")
        release.set()
    assert result.code == 0, result
    row = next(r for r in json.loads(result.out)["limits"] if r["name"] == f"track:{track}")
    assert row == {
        "name": f"track:{track}",
        "rate": "100/m",
        "maxRunning": 1,
        "perKey": False,
        "running": 1,
        "keysRunning": 1,
        "startsInWindow": 1,
        "waiting": 2,
    }
    assert plain.code == 0, plain
    assert f"track:{track}" in plain.out and "WAITING" in plain.out


async def _started(items: list[int]) -> bool:
    return len(items) >= 1
