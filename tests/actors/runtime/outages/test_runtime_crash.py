"""Actor crashes: SIGKILL mid-batch, and a replica frozen while another takes its steps over."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest
from nats.js import JetStreamContext

from actors import TracksClient
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.apps.actor_app import track_names
from tests.support.records import event_counts, step_statuses, stream_subjects
from tests.support.waiting import chain_settled, count_logs, eventually

pytestmark = pytest.mark.slow  # kills or restarts servers: CI runs it, `make test-fast` leaves it out

RUNS = 300


async def test_sigkill_mid_batch_then_restart_loses_nothing_and_completes_nothing_twice(
    servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str, tmp_path: Path
) -> None:
    """300 runs through two tracks; the actor is SIGKILLed once some have completed, with steps in
    flight (claimed, some possibly recorded as completed but not yet acked). A new process picks up
    the redeliveries (ack wait 2 s): every run completes both tracks, each step has exactly one
    ``completed`` record and the stream exactly one completion event per step."""
    work, nxt = track_names(unique)
    env = {
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
        "TRACKS_TEST_PREFIX": unique,
        "TRACKS_TEST_SLEEP_S": "0.2",
        "TRACKS_CONCURRENCY": "30",
        "TRACKS_ACK_WAIT_S": "2",
    }
    first = ActorProcess(["tests.support.apps.actor_app"], env, tmp_path / "first.log")
    second = ActorProcess(["tests.support.apps.actor_app"], env, tmp_path / "second.log")
    first.start()
    try:
        client = TracksClient(js)
        triggered = await asyncio.gather(*(client.trigger(work, {"n": n}) for n in range(RUNS)))
        cids = {cid for cid, _ in triggered}

        async def mid_batch() -> bool:
            completed = await count_logs(pool, work, "completed")
            return completed >= 60 and await count_logs(pool, work, "started") - completed >= 10

        await eventually(mid_batch, timeout=30, what=f"60 completed and 10 running; log:\n{first.output()}")
        first.kill()
        done_before_kill = await count_logs(pool, work, "completed")
        assert done_before_kill < RUNS, "the batch finished before the kill; it proves nothing"

        second.start()

        await chain_settled(
            pool, js, (work, nxt), RUNS, timeout=60, what=f"{RUNS} runs; log:\n{second.output()}"
        )
    finally:
        first.kill()
        second.kill()

    for track in (work, nxt):
        assert await event_counts(pool, track, "completed") == dict.fromkeys(cids, 1), track
        assert await step_statuses(pool, track) == dict.fromkeys(cids, "completed"), track
        assert await stream_subjects(js, "TRACKS", f"tracks.{track}.completed.*") == {
            f"tracks.{track}.completed.{cid}": 1 for cid in cids
        }
    # the kill really interrupted work: steps in flight were started again by the new process,
    # and both processes completed some of the steps
    started = await event_counts(pool, work, "started")
    assert sum(started.values()) > RUNS, "no step was in flight when the actor was killed"
    assert first.proc is not None
    assert second.proc is not None
    pids = await pool.fetch(
        "SELECT DISTINCT (output->>'pid')::int AS pid FROM track_steps WHERE track_id = $1", work
    )
    assert {r["pid"] for r in pids} == {first.proc.pid, second.proc.pid}


async def test_a_stalled_replica_does_not_complete_a_step_another_replica_took_over(
    servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str, tmp_path: Path
) -> None:
    """Replica A is frozen (SIGSTOP) in the middle of 3 s steps; their ack wait (1 s) runs out and
    replica B takes them over and completes them. When A is thawed and stopped, its handlers
    finish too, but the steps already belong to B: each must keep exactly one ``completed``."""
    work, _ = track_names(unique)
    env = {
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
        "TRACKS_TEST_PREFIX": unique,
        "TRACKS_TEST_SLEEP_S": "3",
        "TRACKS_ACK_WAIT_S": "1",
    }
    a = ActorProcess([f"tests.support.apps.actor_app:{work}"], env, tmp_path / "a.log")
    b = ActorProcess([f"tests.support.apps.actor_app:{work}"], env, tmp_path / "b.log")
    a.start()
    try:
        client = TracksClient(js)
        cids = [(await client.trigger(work, {"n": n}))[0] for n in range(4)]

        async def a_running() -> bool:
            return await count_logs(pool, work, "started") >= 4

        await eventually(a_running, timeout=30, what=f"A to start the steps; log:\n{a.output()}")
        a.send(signal.SIGSTOP)
        b.start()

        async def b_done() -> bool:
            return await count_logs(pool, work, "completed") >= 4

        await eventually(b_done, timeout=30, what=f"B to take the steps over; log:\n{b.output()}")
        a.send(signal.SIGCONT)
        a.send(signal.SIGTERM)  # A's in-flight handlers finish and settle before it exits
        assert await a.wait(timeout=30) == 0, a.output()
    finally:
        a.kill()
        b.kill()
    assert await event_counts(pool, work, "completed") == dict.fromkeys(cids, 1)
    # A's late outcomes are on record, fenced off, and were not announced a second time
    assert await count_logs(pool, work, "superseded") == 4
    info = await js.stream_info("TRACKS", subjects_filter=f"tracks.{work}.completed.*")
    assert sum((info.state.subjects or {}).values()) == 4
