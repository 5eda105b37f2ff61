"""Poison messages: unusable triggers are dead-lettered once, recorded, and never redelivered."""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext
from pydantic import BaseModel

from actors import Runtime, TrackContext, Workflow
from foundation.settings import Settings
from subjects import headers
from tests.support.records import consumer_idle, event_counts, step_statuses, stream_subjects
from tests.support.waiting import count_logs, eventually


class Job(BaseModel):
    n: int


def strict_track(name: str) -> Workflow:
    wf = Workflow(f"strict-{name}")

    @wf.track(name)
    async def handler(ctx: TrackContext, job: Job) -> Job:
        return job

    return wf


async def test_bad_bodies_are_dead_lettered_once_and_the_actor_keeps_running(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """Invalid JSON, a non-object body and a payload the handler's model refuses each get a ``failed``
    record saying why and a dead letter on ``dlq.X.<cid>`` carrying the error; the message is
    terminated (no redelivery) and a valid trigger afterwards still completes."""
    track = f"{unique}-strict"
    wf = strict_track(track)
    cases = {
        f"{unique}-badjson": (b'{"n": 1', "not valid JSON"),
        f"{unique}-array": (b"[1, 2, 3]", "must be a JSON object, got list"),
        f"{unique}-schema": (b'{"n": "many"}', "does not match Job"),
    }
    header_cid = f"{unique}-header"
    async with Runtime(list(wf), settings=settings):
        for cid, (body, _) in cases.items():
            await js.publish(f"tracks.{track}.run.{cid}", body)
        # no ID in the subject: the dead letter is filed under the ID the header gives
        await js.publish(f"tracks.{track}.run", b"not json", headers={headers.CORRELATION_ID: header_cid})
        cases[header_cid] = (b"not json", "not valid JSON")

        async def all_dead() -> bool:
            return len(await stream_subjects(js, "DLQ", f"dlq.{track}.*")) >= len(cases)

        await eventually(all_dead, timeout=30, what="4 dead letters")
        await js.publish(f"tracks.{track}.run.{unique}-valid", b'{"n": 7}')

        async def valid_done_and_idle() -> bool:
            return (
                await count_logs(pool, track, "completed") >= 1 and await consumer_idle(js, track) is not None
            )

        await eventually(valid_done_and_idle, timeout=30, what="the valid trigger after the poison ones")
        info = await js.consumer_info("TRACKS", track)

    assert info.num_redelivered == 0
    assert info.num_ack_pending == 0
    assert await stream_subjects(js, "DLQ", f"dlq.{track}.*") == {f"dlq.{track}.{cid}": 1 for cid in cases}
    failed = await pool.fetch(
        "SELECT correlation_id, error, error_type, details FROM processing_logs "
        "WHERE track_id = $1 AND event_type = 'failed'",
        track,
    )
    assert {r["correlation_id"] for r in failed} == set(cases)
    assert len(failed) == len(cases), "a poison message was processed more than once"
    for row in failed:
        cid = row["correlation_id"]
        body, reason = cases[cid]
        assert reason in row["error"], row["error"]
        assert row["details"]["deadLettered"] is True
        letter = await js.get_last_msg("DLQ", f"dlq.{track}.{cid}")
        assert letter.data == body
        assert letter.headers is not None
        assert reason in letter.headers["Tracks-Error"]
        assert letter.headers["Tracks-Error-Type"] == "PoisonMessage"
        assert letter.headers["Tracks-Track"] == track
        assert letter.headers["Tracks-Deliveries"] == "1"
        assert letter.headers["Tracks-Original-Subject"].startswith(f"tracks.{track}.run")
    # the schema-invalid one got as far as a step: it is marked failed; every one of them came with
    # its correlation ID (subject or header), so each is announced to whoever waits on it
    schema_cid = f"{unique}-schema"
    assert await step_statuses(pool, track) == {schema_cid: "failed", f"{unique}-valid": "completed"}
    assert await stream_subjects(js, "TRACKS", f"tracks.{track}.failed.*") == {
        f"tracks.{track}.failed.{cid}": 1 for cid in cases
    }
    assert await event_counts(pool, track, "completed") == {f"{unique}-valid": 1}
