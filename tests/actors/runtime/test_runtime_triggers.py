"""Triggers: plain JSON as ``nats pub`` sends it, correlation IDs, and duplicate triggers."""

from __future__ import annotations

import json

import asyncpg
from nats.js import JetStreamContext
from pydantic import BaseModel

from actors import RetryableError, Runtime, TrackContext, TracksClient, Workflow
from foundation.settings import Settings
from subjects import headers
from tests.support.records import consumer_idle, event_counts, step_statuses, stream_subjects
from tests.support.waiting import count_logs, eventually


class Job(BaseModel):
    n: int


def flaky_once(name: str) -> Workflow:
    """One track that fails the first delivery of every message and succeeds on the second."""
    wf = Workflow(f"flaky-{name}")

    @wf.track(name)
    async def handler(ctx: TrackContext, job: Job) -> dict[str, int]:
        if ctx.deliveries == 1:
            raise RetryableError("first delivery fails", delay_s=0.05)
        return {"n": job.n}

    return wf


async def test_plain_json_trigger_gets_a_stable_generated_correlation_id(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A bare JSON object on ``tracks.X.run`` runs X; its generated correlation ID survives redelivery.

    Every message fails once and is redelivered: were the ID re-generated per delivery, the
    retry would open a second step instead of completing the first.
    """
    track = f"{unique}-plain"
    wf = flaky_once(track)
    async with Runtime(list(wf), settings=settings):
        acks = [await js.publish(f"tracks.{track}.run", json.dumps({"n": n}).encode()) for n in range(3)]
        # a body with a Nats-Msg-Id (as `nats pub -H Nats-Msg-Id:...` sends it): the ID derives from it
        with_id = {headers.MSG_ID: f"{unique}-m"}
        acks.append(await js.publish(f"tracks.{track}.run", b'{"n": 3}', headers=with_id))
        assert not any(a.duplicate for a in acks)

        async def all_completed() -> bool:
            return await count_logs(pool, track, "completed") >= 4

        await eventually(all_completed, timeout=30, what="4 plain triggers completed")

    completed = await event_counts(pool, track, "completed")
    failed = await event_counts(pool, track, "failed")
    steps = await step_statuses(pool, track)
    assert len(completed) == 4, completed
    assert set(completed) == set(failed) == set(steps), "a retry ran under another correlation ID"
    assert set(completed.values()) == {1}
    assert set(failed.values()) == {1}
    assert set(steps.values()) == {"completed"}
    outputs = await pool.fetch("SELECT output FROM track_steps WHERE track_id = $1", track)
    assert sorted(r["output"]["n"] for r in outputs) == [0, 1, 2, 3]
    events = await stream_subjects(js, "TRACKS", f"tracks.{track}.completed.*")
    assert events == {f"tracks.{track}.completed.{cid}": 1 for cid in completed}


async def test_correlation_id_from_subject_or_header(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """``tracks.X.run.<cid>`` and a ``Tracks-Correlation-Id`` header each set the run's correlation ID."""
    track = f"{unique}-given"
    wf = flaky_once(track)
    by_subject, by_header = f"{unique}-subject-cid", f"{unique}-header-cid"
    async with Runtime(list(wf), settings=settings):
        await js.publish(f"tracks.{track}.run.{by_subject}", b'{"n": 1}')
        await js.publish(f"tracks.{track}.run", b'{"n": 2}', headers={headers.CORRELATION_ID: by_header})

        async def both_completed() -> bool:
            return await count_logs(pool, track, "completed") >= 2

        await eventually(both_completed, timeout=30, what="2 triggers completed")

    assert await step_statuses(pool, track) == {by_subject: "completed", by_header: "completed"}
    rows = await pool.fetch("SELECT correlation_id, output FROM track_steps WHERE track_id = $1", track)
    assert {r["correlation_id"]: r["output"]["n"] for r in rows} == {by_subject: 1, by_header: 2}


def chain_of_two(first: str, second: str) -> Workflow:
    wf = Workflow(f"dup-{first}")

    @wf.track(first)
    async def one(ctx: TrackContext, job: Job) -> Job:
        return Job(n=job.n + 1)

    @wf.track(second, after=[first])
    async def two(ctx: TrackContext, job: Job) -> Job:
        return Job(n=job.n * 10)

    return wf


async def test_same_msg_id_is_deduplicated_by_jetstream(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """The same trigger published twice with one ``Nats-Msg-Id`` is stored, and run, once."""
    first, second = f"{unique}-a", f"{unique}-b"
    wf = chain_of_two(first, second)
    client = TracksClient(js)
    async with Runtime(list(wf), settings=settings):
        cid, ack1 = await client.trigger(first, {"n": 1}, correlation_id=f"{unique}-cid")
        _, ack2 = await client.trigger(first, {"n": 1}, correlation_id=cid)
        raw1 = await js.publish(f"tracks.{first}.run", b'{"n": 5}', headers={headers.MSG_ID: f"{unique}-raw"})
        raw2 = await js.publish(f"tracks.{first}.run", b'{"n": 5}', headers={headers.MSG_ID: f"{unique}-raw"})
        # PubAck.duplicate is None (not False) for a first publish
        assert [bool(a.duplicate) for a in (ack1, ack2, raw1, raw2)] == [False, True, False, True]
        assert ack2.seq == ack1.seq
        assert raw2.seq == raw1.seq

        async def settled() -> bool:
            return (
                await count_logs(pool, second, "completed") >= 2
                and await consumer_idle(js, first) is not None
                and await consumer_idle(js, second) is not None
            )

        await eventually(settled, timeout=30, what="both runs through both tracks")

    for track in (first, second):
        assert set((await event_counts(pool, track, "started")).values()) == {1}
        assert set((await event_counts(pool, track, "completed")).values()) == {1}
        assert len(await event_counts(pool, track, "completed")) == 2
        assert await count_logs(pool, track, "duplicate") == 0


async def test_republished_trigger_does_not_rerun_a_completed_step(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A trigger re-published under a new ``Nats-Msg-Id`` (after the dedup window) for a completed step
    runs nothing: the step is not re-run, its completion is re-announced under the same
    ``Nats-Msg-Id`` (so the stream still holds one), and downstream is not triggered again."""
    first, second = f"{unique}-a", f"{unique}-b"
    wf = chain_of_two(first, second)
    client = TracksClient(js)
    cid = f"{unique}-cid"
    async with Runtime(list(wf), settings=settings):
        await client.trigger(first, {"n": 1}, correlation_id=cid)

        async def downstream_done() -> bool:
            return await count_logs(pool, second, "completed") >= 1

        await eventually(downstream_done, timeout=30, what="the first run through both tracks")

        _, again = await client.trigger(first, {"n": 1}, correlation_id=cid, msg_id=f"{unique}-republished")
        assert not again.duplicate

        async def republished_settled() -> bool:
            info = await consumer_idle(js, first)
            return (
                info is not None
                and info.delivered.stream_seq >= again.seq
                and await consumer_idle(js, second) is not None
            )

        await eventually(republished_settled, timeout=30, what="the re-published trigger to be settled")

    assert await count_logs(pool, first, "duplicate") == 1
    for track in (first, second):
        assert await event_counts(pool, track, "started") == {cid: 1}
        assert await event_counts(pool, track, "completed") == {cid: 1}
        assert await stream_subjects(js, "TRACKS", f"tracks.{track}.completed.*") == {
            f"tracks.{track}.completed.{cid}": 1
        }
    assert await count_logs(pool, second, "duplicate") == 0
    assert await step_statuses(pool, second) == {cid: "completed"}


async def test_a_completion_seen_twice_does_not_run_downstream_twice(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """An upstream completion that reaches the stream twice (re-announced after the dedup window,
    simulated by re-publishing it under another ``Nats-Msg-Id``) is delivered to the downstream
    track again: the ledger, not JetStream, keeps the completed step from running a second time."""
    first, second = f"{unique}-a", f"{unique}-b"
    wf = chain_of_two(first, second)
    cid = f"{unique}-cid"
    async with Runtime(list(wf), settings=settings):
        await TracksClient(js).trigger(first, {"n": 1}, correlation_id=cid)

        async def downstream_done() -> bool:
            return await count_logs(pool, second, "completed") >= 1

        await eventually(downstream_done, timeout=30, what="the first run through both tracks")
        original = await js.get_last_msg("TRACKS", f"tracks.{first}.completed.{cid}")
        again = await js.publish(
            original.subject or "",
            original.data or b"",
            headers={headers.MSG_ID: f"{unique}-after-the-window"},
        )
        assert not again.duplicate

        async def duplicate_settled() -> bool:
            info = await consumer_idle(js, second)
            return (
                info is not None
                and info.delivered.stream_seq >= again.seq
                and await count_logs(pool, second, "duplicate") >= 1
            )

        await eventually(duplicate_settled, timeout=30, what="the repeated completion to be settled")

    assert await event_counts(pool, second, "started") == {cid: 1}
    assert await event_counts(pool, second, "completed") == {cid: 1}
    assert await event_counts(pool, second, "duplicate") == {cid: 1}
    # the downstream re-announced its own completion under the same Nats-Msg-Id: still one on the stream
    assert await stream_subjects(js, "TRACKS", f"tracks.{second}.completed.*") == {
        f"tracks.{second}.completed.{cid}": 1
    }
