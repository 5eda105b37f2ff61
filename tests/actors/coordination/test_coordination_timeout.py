"""Run deadlines: a late run is marked timed out, late completions do not resurrect it, resume does."""

from __future__ import annotations

import asyncio
import collections
import json

import pytest

from actors import PermanentError, RunFailed, Runtime, RunTimedOut, TrackContext, TracksClient, Workflow
from actors.ledger.progress import ProgressError, resume
from foundation.jetstream.publisher import EventPublisher
from tests.support.records import stream_subjects
from tests.support.waiting import eventually


def slow_chain(
    prefix: str, calls: collections.Counter[str], gate: asyncio.Event, timeout_s: float
) -> Workflow:
    a, b, c = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"
    wf = Workflow(f"{prefix}-late", timeout_s=timeout_s)

    @wf.track(a)
    async def first(ctx: TrackContext, payload: dict) -> dict:
        calls[a] += 1
        return {"v": payload["v"] + 1}

    @wf.track(b, after=[a])
    async def slow(ctx: TrackContext, payload: dict) -> dict:
        calls[b] += 1
        await gate.wait()  # held past the run's deadline
        return {"v": payload["v"] + 1}

    @wf.track(c, after=[b])
    async def last(ctx: TrackContext, payload: dict) -> dict:
        calls[c] += 1
        return {"v": payload["v"] + 1}

    wf.validate()
    return wf


async def test_timed_out_run_stays_closed_until_resumed(settings, pool, nc, js, unique):
    calls: collections.Counter[str] = collections.Counter()
    release = asyncio.Event()
    wf = slow_chain(unique, calls, release, timeout_s=1.0)
    fast = settings.model_copy(update={"run_timeout_check_s": 0.2})
    events: list[str] = []

    async def on_event(msg) -> None:
        events.append(msg.subject)

    sub = await nc.subscribe(f"tracks.workflow.{wf.name}.>", cb=on_event)
    async with Runtime(list(wf), settings=fast):
        client = TracksClient(nc)
        with pytest.raises(RunTimedOut, match="tracks resume"):
            await client.run(wf, {"v": 0}, timeout=10, correlation_id=f"{unique}-run")
        cid = f"{unique}-run"
        assert (
            await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
            == "timed_out"
        )
        release.set()  # the slow step completes now, after the deadline

        async def late_step_done() -> bool:
            return (
                await pool.fetchval(
                    "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2",
                    cid,
                    f"{unique}-b",
                )
                == "completed"
            )

        await eventually(late_step_done, what="the late step to complete")

        async def refused() -> bool:
            return (
                await pool.fetchval(
                    "SELECT count(*) FROM processing_logs WHERE correlation_id = $1 "
                    "AND track_id = $2 AND event_type = 'skipped'",
                    cid,
                    f"{unique}-c",
                )
                == 1
            )

        await eventually(refused, what="the downstream step to be refused")
        assert calls[f"{unique}-c"] == 0
        assert (
            await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
            == "timed_out"
        )

        resumed = await resume(pool, EventPublisher(js), cid)
        assert resumed.tracks == [f"{unique}-c"]

        async def completed() -> bool:
            return (
                await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
                == "completed"
            )

        await eventually(completed, what="the resumed run to complete")
    await sub.unsubscribe()
    assert dict(calls) == {f"{unique}-a": 1, f"{unique}-b": 1, f"{unique}-c": 1}  # nothing ran twice
    assert f"tracks.workflow.{wf.name}.timed_out.{cid}" in events
    assert await pool.fetchval("SELECT result FROM workflow_runs WHERE correlation_id = $1", cid) == {"v": 3}


async def test_failed_run_resumes_from_the_failed_step(settings, pool, nc, js, unique):
    calls: collections.Counter[str] = collections.Counter()
    broken = {"on": True}
    a, b, c = f"{unique}-a", f"{unique}-b", f"{unique}-c"
    wf = Workflow(f"{unique}-resumable")

    @wf.track(a)
    async def first(ctx: TrackContext, payload: dict) -> dict:
        calls[a] += 1
        return {"v": payload["v"] * 10}

    @wf.track(b, after=[a])
    async def flaky(ctx: TrackContext, payload: dict) -> dict:
        calls[b] += 1
        if broken["on"]:
            raise PermanentError("bookkeeping API rejected the entry")
        return {"v": payload["v"] + 1}

    @wf.track(c, after=[b])
    async def last(ctx: TrackContext, payload: dict) -> dict:
        calls[c] += 1
        return {"v": payload["v"] + 1}

    async with Runtime(list(wf), settings=settings):
        client = TracksClient(nc)
        with pytest.raises(RunFailed, match="bookkeeping API rejected the entry"):
            await client.run(wf, {"v": 4}, timeout=20, correlation_id=f"{unique}-r")
        cid = f"{unique}-r"
        assert (
            await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "failed"
        )
        assert await stream_subjects(js, "DLQ", f"dlq.{b}.*") == {f"dlq.{b}.{cid}": 1}
        broken["on"] = False
        resumed = await resume(pool, EventPublisher(js), cid)
        assert resumed.tracks == [b]
        # the resumed step's dead letter is resolved: out of the DLQ (and its alert), with a record
        assert await stream_subjects(js, "DLQ", f"dlq.{b}.*") == {}
        resolved = await pool.fetch(
            "SELECT error_type, details FROM processing_logs WHERE correlation_id = $1 "
            "AND event_type = 'dead_letter_resolved'",
            cid,
        )
        assert [(r["error_type"], r["details"]["how"]) for r in resolved] == [("PermanentError", "resumed")]

        async def completed() -> bool:
            return (
                await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid)
                == "completed"
            )

        await eventually(completed, what="the resumed run to complete")
        with pytest.raises(ProgressError, match="already completed"):
            await resume(pool, EventPublisher(js), cid)
    assert dict(calls) == {a: 1, b: 2, c: 1}  # the completed first step was not redone
    step_b_input = await pool.fetchval(
        "SELECT details -> 'payload' FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
        "AND event_type = 'started' ORDER BY id DESC LIMIT 1",
        cid,
        b,
    )
    assert json.loads(json.dumps(step_b_input)) == {"v": 40}  # the recorded output of the first step
    assert await pool.fetchval("SELECT result FROM workflow_runs WHERE correlation_id = $1", cid) == {"v": 42}
