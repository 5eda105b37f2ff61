"""Messages whose last try is never settled reach the DLQ: on their next delivery (the claim finds the
step exhausted), or through the max-deliveries advisory when JetStream gives up first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actors import Ledger
from actors.failures.advisories import ERROR_TYPE, MaxDeliveries, MaxDeliveriesWatcher, Outcome
from actors.failures.door import DeadLetterDoor
from actors.ledger.runs import Runs
from foundation.jetstream.publisher import EventPublisher
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.apps.hang_app import MAX_DELIVER, hang_track
from tests.support.records import stream_subjects
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # kills or restarts servers: CI runs it, `make test-fast` leaves it out


def _holder(marks: Path, delivery: int) -> int | None:
    """The pid of the process that received ``delivery``, once it has."""
    for mark in marks.glob(f"{delivery}-*"):
        return int(mark.name.split("-", 1)[1])
    return None


async def _ready(procs: list[ActorProcess]) -> bool:
    """Every live process has printed ``running ...``: its runtime started (advisories included)."""
    return all("running " in p.log_file.read_text(errors="replace") for p in procs if p.running)


async def _kill_holder(marks: Path, delivery: int, procs: list[ActorProcess]) -> ActorProcess:
    async def held() -> bool:
        return _holder(marks, delivery) is not None

    logs = "\n".join(p.output() for p in procs)
    await eventually(held, timeout=20, what=f"delivery {delivery} to reach a handler; logs:\n{logs}")
    # the holder keeps the message with heartbeats: wait until every other replica listens for
    # the advisory, which comes ack_wait after the kill
    await eventually(lambda: _ready(procs), timeout=30, what="every started replica to be running")
    pid = _holder(marks, delivery)
    victim = next(p for p in procs if p.proc is not None and p.proc.pid == pid)
    victim.kill()
    return victim


async def test_last_try_killed_is_dead_lettered_on_the_next_delivery(
    servers: Servers, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str, tmp_path: Path
) -> None:
    """Two replicas of a track whose handler hangs (max_deliver=2, ack_wait 2 s). The process holding
    delivery 1 is SIGKILLed (a replacement starts), then the one holding delivery 2: its last try
    never settles, so the claim of delivery 3 finds the step exhausted and a surviving replica
    dead-letters it with the usual headers (not running it a third time), marks the step failed,
    publishes ``failed`` and fails the run. A max-deliveries advisory for it afterwards changes
    nothing."""
    track, cid = hang_track(unique), f"{unique}-run"
    failed_event = f"tracks.{track}.failed.{cid}"
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
        "TRACKS_TEST_PREFIX": unique,
        "TRACKS_TEST_MARK_DIR": str(marks),
    }
    procs = [ActorProcess(["tests.support.apps.hang_app"], env, tmp_path / f"{n}.log") for n in "abc"]
    try:
        for p in procs[:2]:
            p.start()
        await eventually(lambda: _ready(procs[:2]), timeout=30, what="two replicas to start")
        await js.publish(f"tracks.{track}.run.{cid}", b'{"order": 42}', headers={"X-Origin": "test"})
        await _kill_holder(marks, 1, procs)
        procs[2].start()
        await _kill_holder(marks, MAX_DELIVER, procs)

        async def dead_lettered() -> bool:  # the run is failed last, after the dead letter
            run = await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
            return run == "failed"

        logs = "\n".join(p.output() for p in procs)
        await eventually(dead_lettered, timeout=20, what=f"the step to be failed; logs:\n{logs}")
    finally:
        for p in procs:
            p.kill()

    assert await stream_subjects(js, "DLQ", f"dlq.{track}.*") == {f"dlq.{track}.{cid}": 1}
    letter = await js.get_last_msg("DLQ", f"dlq.{track}.{cid}")
    assert letter.data == b'{"order": 42}'
    assert letter.headers is not None
    hdrs = letter.headers
    assert hdrs["X-Origin"] == "test"
    assert hdrs["Tracks-Error-Type"] == ERROR_TYPE
    assert "never settled" in hdrs["Tracks-Error"]
    assert hdrs["Tracks-Deliveries"] == str(MAX_DELIVER + 1)
    assert hdrs["Tracks-Original-Subject"] == f"tracks.{track}.run.{cid}"
    assert hdrs["Tracks-Track"] == track
    assert hdrs["Tracks-Correlation-Id"] == cid
    assert await stream_subjects(js, "TRACKS", f"tracks.{track}.failed.*") == {failed_event: 1}
    failed = await pool.fetch(
        "SELECT error_type, details FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
        "AND event_type = 'failed'",
        cid,
        track,
    )
    assert [(r["error_type"], r["details"]["via"], r["details"]["deadLettered"]) for r in failed] == [
        (ERROR_TYPE, "exhausted_on_redelivery", True)
    ]
    step = await pool.fetchrow(
        "SELECT attempts, error FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, track
    )
    assert step["attempts"] == MAX_DELIVER
    assert "never settled" in step["error"]

    # the same advisory handled again (another replica, a repeat): no second row, letter or event
    assert (
        await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
    ) == "failed"
    ledger = Ledger(pool)
    ledger.start()
    publisher = EventPublisher(js)
    runs = Runs(pool, publisher)
    runs.start()
    try:
        door = DeadLetterDoor(ledger, publisher, runs)
        watcher = MaxDeliveriesWatcher(nc, js, ledger, publisher, door, [track])
        advisory = MaxDeliveries("TRACKS", track, int(hdrs["Tracks-Original-Stream-Seq"]), MAX_DELIVER)
        assert await watcher.handle(advisory) is Outcome.ALREADY_FAILED
    finally:
        await runs.close()
        await ledger.close()
    await asyncio.sleep(0.2)
    assert await stream_subjects(js, "DLQ", f"dlq.{track}.*") == {f"dlq.{track}.{cid}": 1}
    assert await stream_subjects(js, "TRACKS", f"tracks.{track}.failed.*") == {failed_event: 1}
    again = await pool.fetchval(
        "SELECT count(*) FROM processing_logs "
        "WHERE correlation_id = $1 AND track_id = $2 AND event_type = 'failed'",
        cid,
        track,
    )
    assert again == 1
