"""What one max-deliveries advisory does, by the state of its step (the advisory is built here; the
message, the ledger rows, the DLQ and the events are real)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actors import Ledger
from actors.failures.advisories import (
    ERROR_TYPE,
    MaxDeliveries,
    MaxDeliveriesWatcher,
    Outcome,
    UnsettledSweep,
)
from actors.failures.door import DeadLetterDoor
from actors.ledger.runs import Runs
from actors.transport.decode import fallback_correlation_id, time_us
from foundation.jetstream.publisher import EventPublisher
from tests.support.records import step_statuses, stream_subjects
from tests.support.waiting import eventually


@pytest.fixture
async def watcher(
    nc: NATS, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> AsyncIterator[MaxDeliveriesWatcher]:
    ledger = Ledger(pool)
    ledger.start()
    publisher = EventPublisher(js)
    runs = Runs(pool, publisher)
    runs.start()
    door = DeadLetterDoor(ledger, publisher, runs)
    yield MaxDeliveriesWatcher(nc, js, ledger, publisher, door, [f"{unique}-t"])
    await runs.close()
    await ledger.close()


async def _publish(js: JetStreamContext, subject: str, body: bytes = b'{"n": 1}') -> int:
    return (await js.publish(subject, body)).seq


async def _step(
    pool: asyncpg.Pool,
    cid: str,
    track: str,
    status: str,
    activated_by: int,
    output: dict[str, object] | None = None,
) -> None:
    await pool.execute(
        "INSERT INTO track_steps (correlation_id, track_id, status, attempts, activated_by, output) "
        "VALUES ($1, $2, $3, 1, $4, $5::jsonb)",
        cid,
        track,
        status,
        activated_by,
        output,
    )


async def _failed_rows(pool: asyncpg.Pool, cid: str, track: str) -> list[dict[str, object]]:
    rows = await pool.fetch(
        "SELECT details FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
        "AND event_type = 'failed'",
        cid,
        track,
    )
    return [dict(r["details"]) for r in rows]


async def test_completed_step_is_re_announced_not_dead_lettered(
    watcher: MaxDeliveriesWatcher, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    """The step completed but its ack was lost: the completion event is published again (downstream
    may never have seen it), nothing goes to the DLQ, nothing is recorded as failed."""
    track, cid = f"{unique}-t", f"{unique}-done"
    seq = await _publish(js, f"tracks.{track}.run.{cid}")
    await _step(pool, cid, track, "completed", seq, {"booked": 7})
    assert await watcher.handle(MaxDeliveries("TRACKS", track, seq, 5)) is Outcome.ALREADY_COMPLETED
    assert await stream_subjects(js, "DLQ", f"dlq.{track}.*") == {}
    event = await js.get_last_msg("TRACKS", f"tracks.{track}.completed.{cid}")
    assert json.loads(event.data or b"{}")["payload"] == {"booked": 7}
    assert await _failed_rows(pool, cid, track) == []


async def test_never_claimed_message_is_dead_lettered_and_announced(
    watcher: MaxDeliveriesWatcher, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    """No step (the actor died before claiming it, or the body is unreadable): dead letter under the
    ID a plain trigger would get, a ``failed`` row, a ``failed`` event; no step row is invented."""
    track = f"{unique}-t"
    seq = await _publish(js, f"tracks.{track}.run", b"not json")
    stored = await js.get_msg("TRACKS", seq)
    cid, known = fallback_correlation_id(f"tracks.{track}.run", None, seq, time_us(stored.time))
    assert not known
    assert await watcher.handle(MaxDeliveries("TRACKS", track, seq, 3)) is Outcome.DEAD_LETTERED
    letter = await js.get_last_msg("DLQ", f"dlq.{track}.{cid}")
    assert letter.data == b"not json"
    assert letter.headers is not None
    assert (letter.headers["Tracks-Error-Type"], letter.headers["Tracks-Deliveries"]) == (ERROR_TYPE, "3")
    assert await _failed_rows(pool, cid, track) == [
        {"deadLettered": True, "via": "max_deliveries_advisory", "deliveries": 3, "stepFailed": False}
    ]
    assert await step_statuses(pool, track) == {}
    failed_event = f"tracks.{track}.failed.{cid}"
    assert await stream_subjects(js, "TRACKS", f"tracks.{track}.failed.*") == {failed_event: 1}


async def test_message_that_does_not_own_the_step_leaves_the_step_alone(
    watcher: MaxDeliveriesWatcher, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    """A duplicate whose deliveries ran out while another message runs the step: it is dead-lettered
    and recorded, but the step stays ``running`` and no ``failed`` event claims the run failed."""
    track, cid = f"{unique}-t", f"{unique}-dup"
    owner = await _publish(js, f"tracks.{track}.run.{cid}")
    duplicate = await _publish(js, f"tracks.{track}.run.{cid}")
    await _step(pool, cid, track, "running", owner)
    assert await watcher.handle(MaxDeliveries("TRACKS", track, duplicate, 5)) is Outcome.DEAD_LETTERED
    assert await stream_subjects(js, "DLQ", f"dlq.{track}.*") == {f"dlq.{track}.{cid}": 1}
    assert [r["stepFailed"] for r in await _failed_rows(pool, cid, track)] == [False]
    assert await step_statuses(pool, track) == {cid: "running"}
    assert await stream_subjects(js, "TRACKS", f"tracks.{track}.failed.*") == {}


async def test_message_gone_from_the_stream(watcher: MaxDeliveriesWatcher, unique: str) -> None:
    assert await watcher.handle(MaxDeliveries("TRACKS", f"{unique}-t", 10**12, 5)) is Outcome.MESSAGE_GONE
    assert watcher.handled[Outcome.MESSAGE_GONE] == 1


def test_advisory_parsing() -> None:
    body = (
        b'{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x",'
        b'"timestamp":"2026-11-23T23:32:07Z","stream":"TRACKS","consumer":"drive","stream_seq":12,'
        b'"deliveries":5}'
    )
    assert MaxDeliveries.parse(body) == MaxDeliveries("TRACKS", "drive", 12, 5)
    with pytest.raises(ValueError, match="not a max_deliver advisory"):
        MaxDeliveries.parse(b'{"stream":"TRACKS"}')


async def test_advisory_dead_letter_fails_the_run_and_announces_it(
    watcher: MaxDeliveriesWatcher, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    """The same door as the worker's: the run no longer stays ``running`` after an advisory."""
    track, cid, wf = f"{unique}-t", f"{unique}-run", f"wf-{unique}"
    seq = await _publish(js, f"tracks.{track}.run.{cid}")
    await pool.execute(
        "INSERT INTO workflow_runs (correlation_id, workflow, status) VALUES ($1, $2, 'running')", cid, wf
    )
    await _step(pool, cid, track, "running", seq)
    assert await watcher.handle(MaxDeliveries("TRACKS", track, seq, 5)) is Outcome.DEAD_LETTERED
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "failed"
    assert await step_statuses(pool, track) == {cid: "failed"}
    assert await stream_subjects(js, "TRACKS", f"tracks.workflow.{wf}.failed.{cid}") == {
        f"tracks.workflow.{wf}.failed.{cid}": 1
    }


async def test_the_sweep_settles_a_step_whose_advisory_nobody_heard(
    nc: NATS, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    """The message is gone from the consumer (below its ack floor) while its step is still ``running``
    and idle: the sweep buries it through the same door (dead letter, step and run failed)."""
    track, cid, wf = f"{unique}-t", f"{unique}-run", f"wf-{unique}"
    sub = await js.pull_subscribe(f"tracks.{track}.run.*", durable=track, stream="TRACKS")
    seq = await _publish(js, f"tracks.{track}.run.{cid}")
    (msg,) = await sub.fetch(1, timeout=5)
    await msg.term()  # as JetStream does when it gives up: no longer pending, below the floor
    await pool.execute(
        "INSERT INTO workflow_runs (correlation_id, workflow, status) VALUES ($1, $2, 'running')", cid, wf
    )
    await pool.execute(
        "INSERT INTO track_steps (correlation_id, track_id, workflow, status, attempts, activated_by, "
        "updated_at) VALUES ($1, $2, $3, 'running', 2, $4, now() - interval '1 hour')",
        cid,
        track,
        wf,
        seq,
    )
    ledger = Ledger(pool)
    ledger.start()
    publisher = EventPublisher(js)
    runs = Runs(pool, publisher)
    runs.start()
    try:
        sweep = UnsettledSweep(js, ledger, DeadLetterDoor(ledger, publisher, runs), {track: 1.0})

        async def floor_moved() -> bool:
            info = await js.consumer_info("TRACKS", track)
            return info.ack_floor is not None and info.ack_floor.stream_seq >= seq

        await eventually(floor_moved, timeout=5, what="the ack floor to pass the message")
        assert await sweep.sweep() == 1
        assert await sweep.sweep() == 0  # settled once
    finally:
        await runs.close()
        await ledger.close()
        await js.delete_consumer("TRACKS", track)
    assert await step_statuses(pool, track) == {cid: "failed"}
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "failed"
    letter = await js.get_last_msg("DLQ", f"dlq.{track}.{cid}")
    assert letter.headers is not None and letter.headers["Tracks-Error-Type"] == ERROR_TYPE
    assert [r["via"] for r in await _failed_rows(pool, cid, track)] == ["unsettled_sweep"]
