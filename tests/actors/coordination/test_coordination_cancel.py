"""Cancelling a run: the step in flight is told (``ctx.cancelled``), nothing downstream starts, the
run ends ``cancelled`` with its event on the stream, a waiter gets ``RunCancelled``; finished runs
are refused; the same through ``TracksClient.cancel`` and ``tracksapi.cancel``."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

import asyncpg
import pytest

from actors import RunCancelled, Runtime, TrackContext, TracksClient, Workflow
from actors.ledger.cancel import cancel
from actors.ledger.progress import ProgressError, resume
from actors.runtime.request_api import ApiError, call
from foundation.jetstream.publisher import EventPublisher
from tests.support.records import stream_subjects
from tests.support.waiting import eventually


@dataclass
class Seen:
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    told: list[bool] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)


def cancellable(prefix: str, seen: Seen, *, stop: bool) -> Workflow:
    """a → b → c; b waits until its run is cancelled, then stops (``stop``) or finishes."""
    wf = Workflow(f"{prefix}-cancel")
    a, b, c = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"

    @wf.track(a)
    async def first(ctx: TrackContext, payload: dict) -> dict:
        seen.calls[a] += 1
        return {"v": 1}

    @wf.track(b, after=[a])
    async def sleeper(ctx: TrackContext, payload: dict) -> dict:
        seen.calls[b] += 1
        seen.started.set()
        seen.told.append(await ctx.wait_cancelled(timeout=20))
        seen.reasons.append(ctx.cancel_reason)
        if stop:
            ctx.raise_if_cancelled()
        return {"v": 2}

    @wf.track(c, after=[b])
    async def last(ctx: TrackContext, payload: dict) -> dict:
        seen.calls[c] += 1
        return {"v": 3}

    wf.validate()
    return wf


async def step_status(pool: asyncpg.Pool, cid: str, track: str) -> str | None:
    value = await pool.fetchval(
        "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, track
    )
    return str(value) if value is not None else None


async def test_cancel_a_running_run_whose_step_stops(settings, pool, nc, js, unique):
    seen = Seen()
    wf = cancellable(unique, seen, stop=True)
    cid = f"{unique}-run"
    async with Runtime(list(wf), settings=settings):
        client = TracksClient(nc)
        waiter = asyncio.create_task(client.run(wf, {}, timeout=30, correlation_id=cid))
        await asyncio.wait_for(seen.started.wait(), 20)
        done = await cancel(pool, EventPublisher(js), cid, "operator said stop")
        assert (done.workflow, done.already, done.reason) == (wf.name, False, "operator said stop")
        with pytest.raises(RunCancelled, match="operator said stop") as caught:
            await waiter
        assert caught.value.reason == "operator said stop"

        async def b_settled() -> bool:
            return await step_status(pool, cid, f"{unique}-b") == "cancelled"

        await eventually(b_settled, what="the cancelled step recorded")
        again = await cancel(pool, EventPublisher(js), cid, "twice")
        assert again.already and again.reason == "operator said stop"
    assert seen.told == [True] and seen.reasons == ["operator said stop"]
    assert seen.calls[f"{unique}-c"] == 0
    assert await step_status(pool, cid, f"{unique}-c") is None
    run = await pool.fetchrow(
        "SELECT status, error, finished_at FROM workflow_runs WHERE correlation_id = $1", cid
    )
    assert run["status"] == "cancelled" and run["error"] == "cancelled: operator said stop"
    assert run["finished_at"] is not None
    logged = await pool.fetch(
        "SELECT track_id, details ->> 'reason' AS reason FROM processing_logs "
        "WHERE correlation_id = $1 AND event_type = 'cancelled' ORDER BY id",
        cid,
    )
    assert [(r["track_id"], r["reason"]) for r in logged] == [
        (wf.name, "operator said stop"),  # the run's record
        (f"{unique}-b", "operator said stop"),  # the step that stopped
    ]
    subject = f"tracks.workflow.{wf.name}.cancelled.{cid}"
    assert await stream_subjects(js, "TRACKS", subject) == {subject: 1}  # announced once, twice asked
    with pytest.raises(ProgressError, match="cancelled run is not resumed"):
        await resume(pool, EventPublisher(js), cid)


async def test_a_step_that_finishes_after_cancel_starts_nothing(settings, pool, nc, js, unique):
    """b finishes anyway: its output is recorded; its completion event reaches c, which is not run."""
    seen = Seen()
    wf = cancellable(unique, seen, stop=False)
    cid = f"{unique}-run"
    async with Runtime(list(wf), settings=settings):
        await TracksClient(nc).start(wf, {}, correlation_id=cid)
        await asyncio.wait_for(seen.started.wait(), 20)
        await cancel(pool, EventPublisher(js), cid)

        async def c_skipped() -> bool:
            n = await pool.fetchval(
                "SELECT count(*) FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
                "AND event_type = 'skipped' AND details ->> 'reason' LIKE 'the run was cancelled%'",
                cid,
                f"{unique}-c",
            )
            return bool(n)

        await eventually(c_skipped, what="c's claim refused")
    assert seen.told == [True] and seen.calls[f"{unique}-c"] == 0
    assert await step_status(pool, cid, f"{unique}-b") == "completed"
    output = await pool.fetchval(
        "SELECT output::text FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, f"{unique}-b"
    )
    assert output == '{"v": 2}'
    assert await step_status(pool, cid, f"{unique}-c") is None
    assert (
        await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "cancelled"
    )


async def test_cancel_through_the_client_and_the_request_api(settings, pool, nc, js, unique):
    seen = Seen()
    wf = cancellable(unique, seen, stop=True)
    async with Runtime(list(wf), settings=settings):
        client = TracksClient(nc)
        first = await client.start(wf, {}, correlation_id=f"{unique}-one")
        await asyncio.wait_for(seen.started.wait(), 20)
        assert await client.cancel(first, reason="via client") is True
        assert await client.cancel(first) is False  # already cancelled: said so, nothing changes
        seen.started.clear()
        second = await client.start(wf, {}, correlation_id=f"{unique}-two")
        await asyncio.wait_for(seen.started.wait(), 20)
        reply = await call(nc, "cancel", {"correlationId": second, "reason": "via api"})
        assert reply == {
            "correlationId": second,
            "workflow": wf.name,
            "status": "cancelled",
            "reason": "via api",
            "alreadyCancelled": False,
        }
        with pytest.raises(ApiError) as unknown:
            await call(nc, "cancel", {"correlationId": f"{unique}-nope"})
        assert unknown.value.code == 404 and "no workflow run" in unknown.value.description
        with pytest.raises(ApiError) as bad:
            await call(nc, "cancel", {"correlationId": second, "reason": 3})
        assert bad.value.code == 400

        async def both_told() -> bool:
            return len(seen.told) == 2

        await eventually(both_told, what="both steps told")
    assert seen.told == [True, True] and seen.reasons == ["via client", "via api"]
    statuses = await pool.fetch(
        "SELECT status FROM workflow_runs WHERE correlation_id = ANY($1)", [f"{unique}-one", f"{unique}-two"]
    )
    assert [r["status"] for r in statuses] == ["cancelled", "cancelled"]


async def test_a_finished_run_is_not_cancelled(settings, pool, nc, js, unique):
    wf = Workflow(f"{unique}-quick")

    @wf.track(f"{unique}-only")
    async def only(ctx: TrackContext, payload: dict) -> dict:
        return {"ok": True}

    cid = f"{unique}-done"
    async with Runtime(list(wf), settings=settings):
        assert await TracksClient(nc).run(wf, {}, timeout=20, correlation_id=cid) == {"ok": True}
        with pytest.raises(ApiError) as refused:
            await TracksClient(nc).cancel(cid)
        assert refused.value.code == 409 and "already completed" in refused.value.description
    with pytest.raises(ProgressError, match=f"run {cid} already completed; nothing to cancel"):
        await cancel(pool, EventPublisher(js), cid)
    assert (
        await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "completed"
    )
    assert await stream_subjects(js, "TRACKS", f"tracks.workflow.{wf.name}.cancelled.{cid}") == {}


async def test_a_forged_cancellation_event_tells_no_step(settings, pool, nc, js, unique):
    """Anyone may publish on tracks.workflow.>: the runtime believes only what the ledger says."""
    seen = Seen()
    wf = cancellable(unique, seen, stop=True)
    cid = f"{unique}-run"
    async with Runtime(list(wf), settings=settings) as runtime:
        await TracksClient(nc).start(wf, {}, correlation_id=cid)
        await asyncio.wait_for(seen.started.wait(), 20)
        await nc.publish(f"tracks.workflow.{wf.name}.cancelled.{cid}", b'{"payload": {"reason": "forged"}}')
        await nc.flush()
        await asyncio.sleep(0.5)
        assert seen.told == [] and runtime.cancellations is not None and runtime.cancellations.told == 0
        await cancel(pool, EventPublisher(js), cid)  # the real one, so the step ends

        async def told() -> bool:
            return seen.told == [True]

        await eventually(told, what="the real cancellation told")


async def test_the_slow_example_stops_when_cancelled(settings, pool, nc, js, unique):
    """tracks/examples/slow.py, as the README cancels it."""
    from actors.ledger.listing import show_run
    from tracks.examples.slow import slow

    cid = f"{unique}-slow"
    async with Runtime(list(slow), settings=settings):
        await TracksClient(nc).start(slow, {"seconds": 30}, correlation_id=cid)

        async def exporting() -> bool:
            return await step_status(pool, cid, "slow-export") == "running"

        await eventually(exporting, what="the export step running")
        await cancel(pool, EventPublisher(js), cid, "wrong input")

        async def stopped() -> bool:
            return await step_status(pool, cid, "slow-export") == "cancelled"

        await eventually(stopped, what="the export step stopped")
    detail = await show_run(pool, cid)
    assert detail is not None and detail.run.status == "cancelled"
    assert detail.phases[0]["tracks"] == ["slow-prepare", "slow-export", "slow-publish"]  # upstreams first
    assert [(s.track, s.status) for s in detail.steps] == [
        ("slow-prepare", "completed"),
        ("slow-export", "cancelled"),
    ]


async def test_a_step_waiting_for_a_retry_is_closed_cancelled(settings, pool, nc, js, unique):
    """Cancelled between tries: the retry is refused and the step ends cancelled, not running."""
    from actors import RetryableError

    wf = Workflow(f"{unique}-flaky-wf")
    tries: list[int] = []
    failed = asyncio.Event()

    @wf.track(f"{unique}-flaky")
    async def flaky(ctx: TrackContext, payload: dict) -> dict:
        tries.append(ctx.attempt)
        failed.set()
        raise RetryableError("not yet", delay_s=1.5)

    cid = f"{unique}-run"
    async with Runtime(list(wf), settings=settings):
        await TracksClient(nc).start(wf, {}, correlation_id=cid)
        await asyncio.wait_for(failed.wait(), 20)
        await cancel(pool, EventPublisher(js), cid, "stop retrying")

        async def closed() -> bool:
            return await step_status(pool, cid, f"{unique}-flaky") == "cancelled"

        await eventually(closed, what="the retried step closed as cancelled")
    assert tries == [1]
    events = await pool.fetch(
        "SELECT event_type FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 ORDER BY id",
        cid,
        f"{unique}-flaky",
    )
    assert [e["event_type"] for e in events] == ["started", "failed", "skipped", "cancelled"]
