"""SIGTERM: an actor process stops fetching, lets in-flight steps finish and settle, and exits 0."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg
from nats.js import JetStreamContext

from actors import TracksClient
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.apps.actor_app import track_names
from tests.support.records import event_counts, step_statuses
from tests.support.waiting import count_logs, eventually


def actor(servers: Servers, prefix: str, log: Path, **env: str) -> ActorProcess:
    return ActorProcess(
        [f"tests.support.apps.actor_app:{track_names(prefix)[0]}"],
        {
            "TRACKS_NATS_URL": servers.nats_url,
            "TRACKS_DATABASE_URL": servers.database_url,
            "TRACKS_TEST_PREFIX": prefix,
            **env,
        },
        log,
    )


async def test_sigterm_lets_in_flight_steps_finish_and_exits_0(
    servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str, tmp_path: Path
) -> None:
    """Ten handlers sleeping 1 s are running when SIGTERM arrives: all ten complete, are acked
    (nothing awaits an ack, nothing was redelivered) and the process exits with code 0."""
    work, _ = track_names(unique)
    proc = actor(servers, unique, tmp_path / "actor.log", TRACKS_TEST_SLEEP_S="1.0", TRACKS_ACK_WAIT_S="30")
    proc.start()
    try:
        client = TracksClient(js)
        cids = [(await client.trigger(work, {"n": n}))[0] for n in range(10)]

        async def all_started() -> bool:
            return await count_logs(pool, work, "started") >= 10

        await eventually(all_started, timeout=30, what=f"10 steps to start; actor log:\n{proc.output()}")
        assert await count_logs(pool, work, "completed") == 0, "the handlers finished before SIGTERM was sent"
        proc.send(signal.SIGTERM)
        code = await proc.wait(timeout=30)
    finally:
        proc.kill()

    assert code == 0, proc.output()
    assert await event_counts(pool, work, "completed") == dict.fromkeys(cids, 1)
    assert await step_statuses(pool, work) == dict.fromkeys(cids, "completed")
    info = await js.consumer_info("TRACKS", work)
    assert info.num_ack_pending == 0
    assert info.num_pending == 0
    assert info.num_redelivered == 0


async def test_steps_still_running_after_the_grace_period_are_handed_back(
    servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str, tmp_path: Path
) -> None:
    """Handlers longer than TRACKS_SHUTDOWN_GRACE_S are cancelled and nak'ed on SIGTERM (exit 0);
    the next actor process runs them to completion, each exactly once."""
    work, _ = track_names(unique)
    env = {"TRACKS_TEST_SLEEP_S": "2.0", "TRACKS_SHUTDOWN_GRACE_S": "0.2", "TRACKS_ACK_WAIT_S": "30"}
    first = actor(servers, unique, tmp_path / "first.log", **env)
    first.start()
    try:
        client = TracksClient(js)
        cids = [(await client.trigger(work, {"n": n}))[0] for n in range(5)]

        async def all_started() -> bool:
            return await count_logs(pool, work, "started") >= 5

        await eventually(all_started, timeout=30, what=f"5 steps to start; actor log:\n{first.output()}")
        first.send(signal.SIGTERM)
        assert await first.wait(timeout=20) == 0, first.output()
    finally:
        first.kill()
    assert await count_logs(pool, work, "completed") == 0

    second = actor(servers, unique, tmp_path / "second.log", **env)
    second.start()
    try:

        async def all_completed() -> bool:
            return await count_logs(pool, work, "completed") >= 5

        # well within ack_wait (30 s): they were nak'ed, not left to time out
        await eventually(all_completed, timeout=15, what=f"5 handed-back steps; log:\n{second.output()}")
    finally:
        second.kill()
    assert await event_counts(pool, work, "completed") == dict.fromkeys(cids, 1)
