"""Retries and dead letters: failed attempts are recorded, exhausted or permanent ones go to the DLQ."""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext

from actors import PermanentError, RetryableError, Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from actors.runtime.process import HANDBACK_ALLOWANCE
from foundation.settings import Settings
from tests.support.records import consumer_idle, step_statuses, stream_subjects
from tests.support.waiting import eventually

FAST_RETRY = 0.05


async def _history(pool: asyncpg.Pool, cid: str, track: str) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT event_type, attempt FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
        "ORDER BY occurred_at, id",
        cid,
        track,
    )
    return [(r["event_type"], r["attempt"]) for r in rows]


def retry_workflow(prefix: str) -> Workflow:
    """flaky fails twice then succeeds; doomed always fails; fatal raises PermanentError; each has a
    downstream track that must run only after a success."""
    wf = Workflow(f"retry-{prefix}")

    @wf.track(f"{prefix}-flaky")
    async def flaky(ctx: TrackContext, payload: dict[str, object]) -> dict[str, int]:
        if ctx.deliveries <= 2:
            raise RetryableError(f"transient failure {ctx.deliveries}", delay_s=FAST_RETRY)
        return {"attempt": ctx.attempt}

    @wf.track(f"{prefix}-doomed", options=TrackOptions(max_deliver=3))
    async def doomed(ctx: TrackContext, payload: dict[str, object]) -> None:
        raise RetryableError("the service is down", delay_s=FAST_RETRY)

    @wf.track(f"{prefix}-fatal")
    async def fatal(ctx: TrackContext, payload: dict[str, object]) -> None:
        raise PermanentError("account closed")

    for upstream in ("flaky", "doomed", "fatal"):

        @wf.track(f"{prefix}-after-{upstream}", after=[f"{prefix}-{upstream}"])
        async def after(ctx: TrackContext, payload: dict[str, object]) -> None:
            return None

    return wf


async def test_retries_then_success_and_dead_letters(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A handler failing twice then succeeding records 3 attempts (2 ``failed`` with willRetry, then
    ``completed``) and its downstream runs once; one that always fails is dead-lettered after
    max_deliver=3 deliveries; a PermanentError is dead-lettered on its first delivery. Both
    failures mark the step failed and publish ``tracks.X.failed.<cid>``; their downstreams never run."""
    wf = retry_workflow(unique)
    flaky, doomed, fatal = (f"{unique}-{n}" for n in ("flaky", "doomed", "fatal"))
    cid = f"{unique}-run"
    client = TracksClient(js)
    async with Runtime(list(wf), settings=settings):
        for track in (flaky, doomed, fatal):
            await client.trigger(track, {}, correlation_id=cid)

        async def settled() -> bool:
            steps = await pool.fetch(
                "SELECT track_id, status FROM track_steps WHERE correlation_id = $1 AND status <> 'running'",
                cid,
            )
            finished = {r["track_id"] for r in steps}
            if not {f"{unique}-after-flaky", doomed, fatal} <= finished:
                return False
            return all([await consumer_idle(js, t.name) is not None for t in wf])

        await eventually(settled, timeout=30, what="all three steps to finish")
        doomed_info = await js.consumer_info("TRACKS", doomed)

    assert await _history(pool, cid, flaky) == [
        ("started", 1),
        ("failed", 1),
        ("started", 2),
        ("failed", 2),
        ("started", 3),
        ("completed", 3),
    ]
    retried = await pool.fetch(
        "SELECT details FROM processing_logs "
        "WHERE correlation_id = $1 AND track_id = $2 AND event_type = 'failed'",
        cid,
        flaky,
    )
    assert [r["details"]["willRetry"] for r in retried] == [True, True]
    steps = await pool.fetch(
        "SELECT track_id, status, attempts, error FROM track_steps WHERE correlation_id = $1", cid
    )
    by_track = {r["track_id"]: r for r in steps}
    assert (by_track[flaky]["status"], by_track[flaky]["attempts"]) == ("completed", 3)
    assert await step_statuses(pool, f"{unique}-after-flaky") == {cid: "completed"}

    # the consumer leaves room for hand-backs; the ledger's tries decide (3 here)
    assert doomed_info.config.max_deliver == 3 + HANDBACK_ALLOWANCE
    assert await _history(pool, cid, doomed) == [
        ("started", 1),
        ("failed", 1),
        ("started", 2),
        ("failed", 2),
        ("started", 3),
        ("failed", 3),
    ]
    assert (by_track[doomed]["status"], by_track[doomed]["attempts"]) == ("failed", 3)
    assert "the service is down" in by_track[doomed]["error"]
    assert await _history(pool, cid, fatal) == [("started", 1), ("failed", 1)]
    assert by_track[fatal]["status"] == "failed"
    assert "account closed" in by_track[fatal]["error"]

    for track, deliveries, error_type, error in (
        (doomed, "3", "RetryableError", "the service is down"),
        (fatal, "1", "PermanentError", "account closed"),
    ):
        assert await stream_subjects(js, "DLQ", f"dlq.{track}.*") == {f"dlq.{track}.{cid}": 1}
        letter = await js.get_last_msg("DLQ", f"dlq.{track}.{cid}")
        assert letter.headers is not None
        assert letter.headers["Tracks-Deliveries"] == deliveries
        assert letter.headers["Tracks-Error-Type"] == error_type
        assert error in letter.headers["Tracks-Error"]
        assert letter.headers["Tracks-Correlation-Id"] == cid
        failed_events = await stream_subjects(js, "TRACKS", f"tracks.{track}.failed.*")
        assert failed_events == {f"tracks.{track}.failed.{cid}": 1}
        assert await stream_subjects(js, "TRACKS", f"tracks.{track}.completed.*") == {}
        assert await step_statuses(pool, f"{track.replace(unique, unique + '-after', 1)}") == {}
    assert await stream_subjects(js, "DLQ", f"dlq.{flaky}.*") == {}
