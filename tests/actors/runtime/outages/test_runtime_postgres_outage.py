"""PostgreSQL stopped under a running actor: processing pauses, resumes, and stays exactly-once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from actors import Runtime, TracksClient
from foundation.db import create_pool
from foundation.settings import Settings
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.apps.actor_app import build_workflow, track_names
from tests.support.records import event_counts, step_statuses, stream_subjects
from tests.support.servers import own_postgres
from tests.support.waiting import chain_settled, count_logs, eventually

pytestmark = pytest.mark.slow  # kills or restarts servers: CI runs it, `make test-fast` leaves it out

RUNS = 200
CONCURRENCY = 40


async def test_actor_rides_out_a_postgres_outage(
    settings: Settings, js: JetStreamContext, unique: str, tmp_path: Path
) -> None:
    """PostgreSQL stops for 10 s while 200 runs are under way. No completion is announced while it
    is away (a completion is only published once its ``completed`` record is durable); once it is
    back, every run completes both tracks with exactly one ``completed`` record per step, and every
    completion event on the stream has its record."""
    wf = build_workflow(unique, sleep_s=0.3)
    work, nxt = track_names(unique)
    async with own_postgres(tmp_path) as pg:
        tuned = settings.model_copy(
            update={"database_url": pg.url, "ack_wait_s": 2.0, "concurrency": CONCURRENCY}
        )
        pool = await create_pool(pg.url, max_size=2)
        try:
            async with Runtime(list(wf), settings=tuned) as runtime:
                client = TracksClient(js)
                cids = {
                    cid
                    for cid, _ in await asyncio.gather(*(client.trigger(work, {"n": n}) for n in range(RUNS)))
                }

                async def mid_batch() -> bool:  # handlers are running: their records must wait
                    completed = await count_logs(pool, work, "completed")
                    return completed >= 40 and await count_logs(pool, work, "started") - completed >= 10

                await eventually(mid_batch, timeout=30, what="40 steps done and 10 running before the outage")
                await pool.expire_connections()
                await asyncio.to_thread(pg.stop)
                # steps whose record was durable before the stop may still announce; then nothing
                await asyncio.sleep(1.5)
                announced = len(await stream_subjects(js, "TRACKS", f"tracks.{work}.completed.*"))
                await asyncio.sleep(8.5)  # 10 s down in all: held messages live on their heartbeats
                assert len(await stream_subjects(js, "TRACKS", f"tracks.{work}.completed.*")) == announced
                assert announced < RUNS, "all runs finished before the outage; it proves nothing"
                await asyncio.to_thread(pg.start)

                await chain_settled(
                    pool, js, (work, nxt), RUNS, timeout=60, what=f"{RUNS} runs after the outage"
                )
                assert runtime.ledger is not None
                assert runtime.ledger.transient_failures > 0, "the runtime never noticed the outage"

            for track in (work, nxt):
                assert await event_counts(pool, track, "completed") == dict.fromkeys(cids, 1), track
                assert await step_statuses(pool, track) == dict.fromkeys(cids, "completed"), track
                announced_cids = {
                    s.rsplit(".", 1)[1]
                    for s in await stream_subjects(js, "TRACKS", f"tracks.{track}.completed.*")
                }
                assert announced_cids == cids, track
        finally:
            await pool.close()


async def test_sigterm_during_a_postgres_outage_exits_and_loses_nothing(
    servers: Servers, js: JetStreamContext, unique: str, tmp_path: Path
) -> None:
    """SIGTERM while PostgreSQL is down: the actor cannot make its records durable, so it must not
    ack anything, but it must still exit (code 0) within its grace period instead of waiting for
    the database forever. Once PostgreSQL is back, a new actor completes every run exactly once."""
    work, nxt = track_names(unique)
    async with own_postgres(tmp_path) as pg:
        env = {
            "TRACKS_NATS_URL": servers.nats_url,
            "TRACKS_DATABASE_URL": pg.url,
            "TRACKS_TEST_PREFIX": unique,
            "TRACKS_TEST_SLEEP_S": "0.3",
            "TRACKS_SHUTDOWN_GRACE_S": "1",
            "TRACKS_ACK_WAIT_S": "2",
        }
        first = ActorProcess(["tests.support.apps.actor_app"], env, tmp_path / "first.log")
        second = ActorProcess(["tests.support.apps.actor_app"], env, tmp_path / "second.log")
        pool = await create_pool(pg.url, max_size=2)
        try:
            first.start()
            client = TracksClient(js)
            triggered = await asyncio.gather(*(client.trigger(work, {"n": n}) for n in range(20)))
            cids = {cid for cid, _ in triggered}

            async def running() -> bool:
                return await count_logs(pool, work, "started") >= 1

            await eventually(running, timeout=30, what=f"steps to start; log:\n{first.output()}")
            await pool.expire_connections()
            await asyncio.to_thread(pg.stop)
            first.send(signal.SIGTERM)
            code = await first.wait(timeout=15)
            assert code == 0, first.output()
            await asyncio.to_thread(pg.start)
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
            await pool.close()
