"""A forged run outcome on ``tracks.workflow.>`` does not end a waiter's wait: the client checks the
event against the ledger (through a running actor) before it believes it."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from nats.aio.client import Client as NATS

from actors import Runtime, TrackContext, TracksClient, Workflow
from foundation.settings import Settings


async def test_a_forged_failed_event_does_not_fool_a_waiting_client(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, unique: str
) -> None:
    wf = Workflow(f"wf-{unique}")
    release = asyncio.Event()

    @wf.track(f"{unique}-slow")
    async def slow(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        await release.wait()
        return {"done": True}

    cid = f"{unique}-run"
    async with Runtime(list(wf), settings=settings):
        waiting = asyncio.create_task(TracksClient(nc).run(wf, {}, timeout=30, correlation_id=cid))
        await asyncio.sleep(0.5)
        forged = {"payload": {"outcome": "failed", "track": "x", "error": "forged"}}
        await nc.publish(f"tracks.workflow.{wf.name}.failed.{cid}", json.dumps(forged).encode())
        await asyncio.sleep(0.5)
        assert not waiting.done()
        release.set()
        assert await waiting == {"done": True}
