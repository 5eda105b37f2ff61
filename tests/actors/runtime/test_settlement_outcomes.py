"""Every way one delivery can end, through the real chain and settlement, without NATS (fake messages
that record ack/nak/term, a publisher that records, the real ledger): one test per outcome path."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from actors import PermanentError, TrackContext, TrackOptions, Workflow
from actors.ledger.store import Claim, StepFinish
from foundation.settings import Settings
from tests.support.harness import FakeMsg, Harness


def _pair(unique: str) -> Workflow:
    wf = Workflow(f"wf-{unique}")

    @wf.track(f"{unique}-a", options=TrackOptions(max_deliver=2))
    async def a(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        if payload.get("fail") == "permanent":
            raise PermanentError("refused")
        if payload.get("fail") == "retry":
            raise RuntimeError("flaky")
        return {"seen": payload.get("n")}

    @wf.track(f"{unique}-b", after=[f"{unique}-a"])
    async def b(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    return wf


def _trigger(track: str, cid: str, body: dict[str, object], seq: int, delivered: int = 1) -> FakeMsg:
    return FakeMsg(
        f"tracks.{track}.run.{cid}", json.dumps(body).encode(), seq=seq, delivered=delivered, track=track
    )


async def _rows(pool: asyncpg.Pool, cid: str, track: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT event_type FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 ORDER BY id",
        cid,
        track,
    )
    return [r["event_type"] for r in rows]


async def test_completed_is_durable_then_announced_then_acked(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    async with Harness(wf[f"{unique}-a"], pool, settings) as h:
        msg = await h.deliver(_trigger(f"{unique}-a", f"{unique}-1", {"n": 1}, seq=1))
    assert msg.settlement == "ack"
    assert await _rows(pool, f"{unique}-1", f"{unique}-a") == ["started", "completed"]
    assert h.publisher.subjects() == [f"tracks.{unique}-a.completed.{unique}-1"]


async def test_redelivery_of_the_completing_message_re_announces_without_running(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    async with Harness(wf[f"{unique}-a"], pool, settings) as h:
        await h.deliver(_trigger(f"{unique}-a", f"{unique}-1", {"n": 1}, seq=1))
        again = await h.deliver(_trigger(f"{unique}-a", f"{unique}-1", {"n": 1}, seq=1, delivered=2))
        other = await h.deliver(_trigger(f"{unique}-a", f"{unique}-1", {"n": 1}, seq=2))
    assert (again.settlement, other.settlement) == ("ack", "ack")
    assert await _rows(pool, f"{unique}-1", f"{unique}-a") == [
        "started",
        "completed",
        "duplicate",
        "duplicate",
    ]
    completed = f"tracks.{unique}-a.completed.{unique}-1"
    assert h.publisher.subjects() == [completed, completed]  # re-announced once, the duplicate not


async def test_retryable_failure_records_and_naks_with_back_off(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    async with Harness(wf[f"{unique}-a"], pool, settings) as h:
        msg = await h.deliver(_trigger(f"{unique}-a", f"{unique}-1", {"fail": "retry"}, seq=1))
    assert msg.settled[0][0] == "nak" and (msg.settled[0][1] or 0) > 0
    assert await _rows(pool, f"{unique}-1", f"{unique}-a") == ["started", "failed"]
    assert h.publisher.published == []


async def test_last_try_dead_letters_fails_the_run_and_terms(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-1"
    async with Harness(wf[track], pool, settings) as h:
        await h.deliver(_trigger(track, cid, {"fail": "retry"}, seq=1))
        last = await h.deliver(_trigger(track, cid, {"fail": "retry"}, seq=1, delivered=2))
    assert last.settlement == "term"
    assert h.publisher.subjects() == [
        f"dlq.{track}.{cid}",
        f"tracks.{track}.failed.{cid}",
        f"tracks.workflow.{wf.name}.failed.{cid}",
    ]
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "failed"


async def test_handler_permanent_error_dead_letters_at_once_and_spares_the_breaker(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    track = f"{unique}-a"
    async with Harness(wf[track], pool, settings) as h:
        for n in range(3):
            msg = await h.deliver(_trigger(track, f"{unique}-{n}", {"fail": "permanent"}, seq=n + 1))
            assert msg.settlement == "term"
        assert h.breaker.consecutive_failures == 0


async def test_poison_is_dead_lettered_on_first_delivery_and_its_waiter_hears(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-bad"
    async with Harness(wf[track], pool, settings) as h:
        msg = await h.deliver(FakeMsg(f"tracks.{track}.run.{cid}", b"[1,", seq=1, track=track))
    assert msg.settlement == "term"
    assert h.publisher.subjects() == [
        f"dlq.{track}.{cid}",
        f"tracks.{track}.failed.{cid}",
        f"tracks.workflow.{wf.name}.failed.{cid}",
    ]
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "failed"


async def test_poison_never_fails_a_run_that_exists(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-good"
    async with Harness(wf[track], pool, settings) as h:
        await h.deliver(_trigger(track, cid, {"n": 1}, seq=1))
        await h.deliver(FakeMsg(f"tracks.{track}.run.{cid}", b"\xff\xfe{}", seq=2, track=track))
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "running"


async def test_a_try_that_never_settled_is_dead_lettered_not_run_again(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    """Delivery 2 of a max_deliver=2 track was claimed and died: delivery 3 finds the tries used up."""
    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-1"
    async with Harness(wf[track], pool, settings) as h:
        for _ in (1, 2):  # claimed, then the process "died" (no outcome written)
            await h.ledger.claim(Claim(cid, track, 7, wf.name, root=True, max_tries=2))
        msg = await h.deliver(_trigger(track, cid, {"n": 1}, seq=7, delivered=3))
    assert msg.settlement == "term"
    assert await _rows(pool, cid, track) == ["started", "started", "failed"]
    letter = h.publisher.published[0]
    assert letter[0] == f"dlq.{track}.{cid}" and letter[2]["Tracks-Error-Type"] == "MaxDeliveriesExceeded"


async def test_hand_backs_do_not_use_up_tries(pool: asyncpg.Pool, settings: Settings, unique: str) -> None:
    """Delivery 9 of a message handed back 8 times unstarted still runs: the ledger counts tries."""
    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-1"
    async with Harness(wf[track], pool, settings) as h:
        handed = _trigger(track, cid, {"n": 1}, seq=3, delivered=1)
        await h.worker.settlement.hand_back(handed)  # type: ignore[arg-type]
        msg = await h.deliver(_trigger(track, cid, {"n": 1}, seq=3, delivered=9))
    assert handed.settlement == "nak"
    assert msg.settlement == "ack"
    assert await _rows(pool, cid, track) == ["started", "completed"]


async def test_a_forged_upstream_event_is_dead_lettered_as_unexpected(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    """``tracks.a.completed.<cid>`` for a run in which ``a`` never completed does not start ``b``."""
    wf = _pair(unique)
    up, down, cid = f"{unique}-a", f"{unique}-b", f"{unique}-forged"
    from subjects import EventType, encode_event

    body = encode_event(
        up, EventType.COMPLETED, {"x": 1}, correlation_id=cid, source_track=up, workflow=wf.name
    )
    async with Harness(wf[down], pool, settings) as h:
        msg = await h.deliver(FakeMsg(f"tracks.{up}.completed.{cid}", body, seq=11, track=down))
    assert msg.settlement == "term"
    assert await pool.fetchval("SELECT count(*) FROM track_steps WHERE correlation_id = $1", cid) == 0
    assert h.publisher.subjects() == [f"dlq.{down}.{cid}"]  # no failed event, no run to fail
    error_type = await pool.fetchval(
        "SELECT error_type FROM processing_logs WHERE correlation_id = $1 AND track_id = $2", cid, down
    )
    assert error_type == "UnexpectedEvent"


async def test_a_late_outcome_of_a_superseded_attempt_is_not_announced_nor_settled(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-1"
    async with Harness(wf[track], pool, settings) as h:
        first = await h.ledger.claim(Claim(cid, track, 5, wf.name, root=True, max_tries=5))
        await h.ledger.claim(
            Claim(cid, track, 5, wf.name, root=True, max_tries=5)
        )  # another replica took over
        from actors.ledger.store import LogRow

        written = await h.ledger.finish(
            StepFinish("completed", LogRow(cid, track, "completed"), output={}, fence=first.attempt)
        )
    assert not written.applied
    assert await _rows(pool, cid, track) == ["started", "started", "superseded"]


async def test_a_trigger_without_an_id_after_the_stream_was_re_created_is_a_new_run(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    """Stream sequences restart when TRACKS is re-created while PostgreSQL keeps the runs: the derived
    ID also depends on when the stream stored the message, so sequence 1 of the new stream is a new
    run, while a redelivery of the same stored message keeps its ID (and is not run again)."""
    wf = _pair(unique)
    track = f"{unique}-a"
    async with Harness(wf[track], pool, settings) as h:
        old = FakeMsg(f"tracks.{track}.run", b'{"n": 1}', seq=1, stored_ns=1_000_000_000_000_000, track=track)
        again = FakeMsg(
            f"tracks.{track}.run",
            b'{"n": 1}',
            seq=1,
            delivered=2,
            stored_ns=1_000_000_000_000_000,
            track=track,
        )
        new = FakeMsg(f"tracks.{track}.run", b'{"n": 2}', seq=1, stored_ns=2_000_000_000_000_000, track=track)
        for msg in (old, again, new):
            await h.deliver(msg)
    completions = [json.loads(body) for subject, body, _ in h.publisher.published if ".completed." in subject]
    cids = [c["metadata"]["correlationId"] for c in completions]
    assert len(cids) == 3 and cids[0] == cids[1] != cids[2]
    assert [c["payload"] for c in completions] == [{"seen": 1}, {"seen": 1}, {"seen": 2}]


async def test_a_claim_the_database_refused_uses_no_try_and_records_nothing(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    from asyncpg.exceptions._base import InternalClientError

    from foundation.group_commit import is_transient

    assert is_transient(
        InternalClientError("cannot switch to state 12; another operation (2) is in progress")
    )
    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-1"
    async with Harness(wf[track], pool, settings) as h:

        def refused(claim: Claim) -> asyncio.Future[object]:
            future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            future.set_exception(asyncpg.DataError("refused"))
            return future

        h.ledger.claim = refused  # type: ignore[assignment, method-assign]
        msg = await h.deliver(_trigger(track, cid, {"n": 1}, seq=1))
    assert msg.settled[0][0] == "nak"
    assert await _rows(pool, cid, track) == []
    assert h.publisher.published == []


async def test_a_row_nobody_waits_for_that_fails_is_logged_and_counted(
    pool: asyncpg.Pool, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    from actors.ledger.store import Ledger, LogRow

    ledger = Ledger(pool)
    ledger.start()
    try:
        ledger.record(LogRow(f"{unique}-c", f"{unique}-t", "x" * 10, details={"bad": "\u0000"}))
        await ledger.record_durably(LogRow(f"{unique}-c", f"{unique}-t", "note"))
    finally:
        await ledger.close()
    assert ledger.lost_rows == 1
    assert "could not be written and is lost" in caplog.text


async def test_an_output_the_ledger_cannot_store_is_dead_lettered_not_retried_for_ever(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    wf = Workflow(f"wf-{unique}")
    track, cid = f"{unique}-inf", f"{unique}-1"

    @wf.track(track)
    async def infinite(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return {"x": float("inf")}

    async with Harness(wf[track], pool, settings) as h:
        msg = await h.deliver(_trigger(track, cid, {}, seq=1))
    assert msg.settlement == "term"
    letter = h.publisher.published[0]
    assert letter[0] == f"dlq.{track}.{cid}" and letter[2]["Tracks-Error-Type"] == "UnstorableOutput"
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "failed"


async def test_a_message_claiming_another_workflow_is_poison(
    pool: asyncpg.Pool, settings: Settings, unique: str
) -> None:
    from subjects import EventType, encode_event

    wf = _pair(unique)
    track, cid = f"{unique}-a", f"{unique}-spoof"
    body = encode_event(
        track, EventType.DATA_READY, {"n": 1}, correlation_id=cid, source_track="x", workflow="someone-else"
    )
    async with Harness(wf[track], pool, settings) as h:
        msg = await h.deliver(FakeMsg(f"tracks.{track}.run.{cid}", body, seq=1, track=track))
    assert msg.settlement == "term"
    assert await pool.fetchval("SELECT workflow FROM workflow_runs WHERE correlation_id = $1", cid) == wf.name
    assert f"tracks.workflow.someone-else.failed.{cid}" not in h.publisher.subjects()
