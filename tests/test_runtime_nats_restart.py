"""nats-server restarted under a running actor: consumption resumes by itself and nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from actors import Runtime, TracksClient
from tests.support.actor_app import build_workflow, track_names
from tests.support.records import consumer_idle, event_counts, step_statuses, stream_subjects
from tests.support.servers import own_nats
from tests.support.waiting import count_logs, eventually
from tracks.connections import connect_nats
from tracks.settings import Settings

BEFORE, AFTER = 200, 50


async def test_actor_survives_a_nats_server_restart(
    settings: Settings, pool: asyncpg.Pool, unique: str, tmp_path: Path
) -> None:
    """200 runs are under way when the nats-server restarts (same port, same store); 50 more are
    triggered after it is back. The same in-process runtime finishes all 250 through both tracks,
    each step completed exactly once, with one completion event per step on the stream."""
    wf = build_workflow(unique, sleep_s=0.05)
    work, nxt = track_names(unique)
    with own_nats(tmp_path) as server:
        tuned = settings.model_copy(update={"nats_url": server.url, "ack_wait_s": 2.0, "concurrency": 20})
        nc = await connect_nats(tuned, server.url, name="test-restart")
        try:
            js = nc.jetstream()
            async with Runtime(list(wf), settings=tuned) as runtime:
                client = TracksClient(js)
                cids = {cid for cid, _ in await asyncio.gather(*(client.trigger(work, {"n": n})
                                                                  for n in range(BEFORE)))}

                async def under_way() -> bool:
                    return await count_logs(pool, work, "completed") >= 40

                await eventually(under_way, timeout=30, what="40 steps before the restart")
                await asyncio.to_thread(server.restart)
                assert await count_logs(pool, nxt, "completed") < BEFORE, "all done before the restart"
                for n in range(AFTER):
                    cids.add((await client.trigger(work, {"n": BEFORE + n}))[0])

                async def all_done() -> bool:
                    return (await count_logs(pool, nxt, "completed") >= BEFORE + AFTER
                            and await consumer_idle(js, work) is not None
                            and await consumer_idle(js, nxt) is not None)

                await eventually(all_done, timeout=60, what=f"{BEFORE + AFTER} runs after the restart")
                rebinds = sum(w.source.rebinds for w in runtime.workers.values())

            assert len(cids) == BEFORE + AFTER
            for track in (work, nxt):
                assert await event_counts(pool, track, "completed") == dict.fromkeys(cids, 1), track
                assert await step_statuses(pool, track) == dict.fromkeys(cids, "completed"), track
                assert await stream_subjects(js, "TRACKS", f"tracks.{track}.completed.*") == {
                    f"tracks.{track}.completed.{cid}": 1 for cid in cids
                }
            assert rebinds >= 2, "each track's pull subscription is re-bound after the reconnect"
        finally:
            await nc.close()
