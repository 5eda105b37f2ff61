"""nats-server restarted under a running actor: consumption resumes by itself and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest
from nats.js.errors import NotFoundError

from actors import Runtime, TracksClient
from foundation.connections import connect_nats
from foundation.settings import Settings, load_settings
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.apps.actor_app import build_workflow, track_names
from tests.support.records import event_counts, step_statuses, stream_subjects
from tests.support.servers import own_nats
from tests.support.waiting import chain_settled, count_logs, eventually

pytestmark = pytest.mark.slow  # kills or restarts servers: CI runs it, `make test-fast` leaves it out

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
                cids = {
                    cid
                    for cid, _ in await asyncio.gather(
                        *(client.trigger(work, {"n": n}) for n in range(BEFORE))
                    )
                }

                async def under_way() -> bool:
                    return await count_logs(pool, work, "completed") >= 40

                await eventually(under_way, timeout=30, what="40 steps before the restart")
                await asyncio.to_thread(server.restart)
                assert await count_logs(pool, nxt, "completed") < BEFORE, "all done before the restart"
                for n in range(AFTER):
                    cids.add((await client.trigger(work, {"n": BEFORE + n}))[0])

                await chain_settled(
                    pool,
                    js,
                    (work, nxt),
                    BEFORE + AFTER,
                    timeout=60,
                    what=f"{BEFORE + AFTER} runs after the restart",
                )
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


async def test_sigterm_while_nats_is_down_exits_cleanly_and_loses_nothing(
    servers: Servers, pool: asyncpg.Pool, unique: str, tmp_path: Path
) -> None:
    """SIGTERM while the nats-server is down: the actor cannot ack, but it still stops within its
    grace period with exit code 0; once NATS is back, a new actor completes every run exactly once."""
    work, nxt = track_names(unique)
    with own_nats(tmp_path) as server:
        env = {
            "TRACKS_NATS_URL": server.url,
            "TRACKS_DATABASE_URL": servers.database_url,
            "TRACKS_TEST_PREFIX": unique,
            "TRACKS_TEST_SLEEP_S": "0.5",
            "TRACKS_SHUTDOWN_GRACE_S": "1",
            "TRACKS_ACK_WAIT_S": "2",
        }
        first = ActorProcess(["tests.support.apps.actor_app"], env, tmp_path / "first.log")
        second = ActorProcess(["tests.support.apps.actor_app"], env, tmp_path / "second.log")
        settings = load_settings(nats_url=server.url, database_url=servers.database_url)
        nc = await connect_nats(settings, server.url, name="test-sigterm-nats-down")
        try:
            first.start()
            js = nc.jetstream()
            client = TracksClient(js)

            async def subscribed() -> bool:  # the actor created its consumer
                try:
                    await js.consumer_info("TRACKS", work)
                except NotFoundError:
                    return False
                return True

            await eventually(subscribed, timeout=30, what=f"the actor to start; log:\n{first.output()}")
            cids = {(await client.trigger(work, {"n": n}))[0] for n in range(10)}

            async def running() -> bool:
                return await count_logs(pool, work, "started") >= 1

            await eventually(running, timeout=30, what=f"steps to start; log:\n{first.output()}")
            await asyncio.to_thread(server.stop)
            first.send(signal.SIGTERM)
            assert await first.wait(timeout=20) == 0, first.output()
            await asyncio.to_thread(server.start)
            second.start()

            await chain_settled(
                pool,
                js,
                (work, nxt),
                len(cids),
                timeout=60,
                what=f"every run after restart; log:\n{second.output()}",
            )
            for track in (work, nxt):
                assert await event_counts(pool, track, "completed") == dict.fromkeys(cids, 1), track
        finally:
            first.kill()
            second.kill()
            await nc.close()
