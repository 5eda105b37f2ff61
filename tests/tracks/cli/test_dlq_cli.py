"""``tracks dlq``: list and show dead letters, replay them once the bug is fixed, purge them."""

from __future__ import annotations

import json

import asyncpg
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors import PermanentError, Runtime, TrackContext, TracksClient, Workflow
from foundation.settings import Settings
from tests.conftest import Servers
from tests.support.cli import run_tracks
from tests.support.records import event_counts, step_statuses, stream_subjects
from tests.support.waiting import eventually

BROKEN: set[str] = set()
"""Tracks whose handler fails (the "bug"); a test fixes one by removing it."""


def bookkeeping(prefix: str) -> Workflow:
    """``src`` passes a number on, ``sink`` books it, ``other`` echoes: each fails while in :data:`BROKEN`."""
    wf = Workflow(f"dlq-{prefix}")

    @wf.track(f"{prefix}-src")
    async def src(ctx: TrackContext, job: dict[str, int]) -> dict[str, int]:
        if ctx.track in BROKEN:
            raise PermanentError("the mailbox is unreachable")
        return {"n": job["n"] + 1}

    @wf.track(f"{prefix}-sink", after=[f"{prefix}-src"])
    async def sink(ctx: TrackContext, got: dict[str, int]) -> dict[str, int]:
        if ctx.track in BROKEN:
            raise PermanentError("the bookkeeping API rejected the entry")
        return {"booked": got["n"]}

    @wf.track(f"{prefix}-other")
    async def other(ctx: TrackContext, job: dict[str, int]) -> dict[str, int]:
        if ctx.track in BROKEN:
            raise PermanentError("other is broken too")
        return job

    return wf


async def _dead_letters(js: JetStreamContext, track: str, n: int) -> None:
    async def there() -> bool:
        return len(await stream_subjects(js, "DLQ", f"dlq.{track}.*")) >= n

    await eventually(there, timeout=30, what=f"{n} dead letters of {track}")


async def test_ls_show_then_replay_after_the_fix_completes_the_workflow(
    settings: Settings, servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A broken downstream step is dead-lettered; ``ls`` and ``show`` say why (with the traceback);
    after the fix, ``replay SEQ`` re-publishes the upstream's completion event under the same
    correlation ID: the step completes with the upstream's payload, the replay is recorded, the dead
    letter is gone and the upstream did not run again. A second replay of it is one error line."""
    src, sink = f"{unique}-src", f"{unique}-sink"
    cid = f"{unique}-order"
    BROKEN.add(sink)
    async with Runtime(list(bookkeeping(unique)), settings=settings):
        await TracksClient(js).trigger(src, {"n": 41}, correlation_id=cid)
        await _dead_letters(js, sink, 1)
        seq = (await js.get_last_msg("DLQ", f"dlq.{sink}.{cid}")).seq
        assert seq is not None

        listed = await run_tracks(servers, "dlq", "ls", "--track", sink)
        assert listed.code == 0, listed
        header, line = listed.out.splitlines()
        assert header.split()[:3] == ["SEQ", "TIME", "(UTC)"]
        for part in (str(seq), sink, cid, "PermanentError", "the bookkeeping API rejected the entry"):
            assert part in line, line
        wide = await run_tracks(servers, "dlq", "ls", "--track", sink, "-w")
        header, line = wide.out.splitlines()
        assert header.split("\t")[:4] == ["SEQ", "TIME (UTC)", "TRACK", "CORRELATION ID"]
        assert line.split("\t")[:4] == [str(seq), line.split("\t")[1], sink, cid]  # whole, never cut

        as_json = json.loads((await run_tracks(servers, "dlq", "show", str(seq), "--json")).out)
        assert (as_json["seq"], as_json["track"], as_json["correlationId"]) == (seq, sink, cid)
        assert as_json["time"].endswith("Z") and as_json["body"]["payload"]["n"] == 42
        assert as_json["headers"]["Tracks-Original-Subject"] == f"tracks.{src}.completed.{cid}"
        assert "PermanentError" in as_json["traceback"]

        shown = await run_tracks(servers, "dlq", "show", str(seq))
        assert shown.code == 0, shown
        assert f"Tracks-Original-Subject: tracks.{src}.completed.{cid}" in shown.out
        assert "Tracks-Error: the bookkeeping API rejected the entry" in shown.out
        assert '"n": 42' in shown.out  # the body, pretty-printed
        assert "traceback:" in shown.out
        assert 'raise PermanentError("the bookkeeping API rejected the entry")' in shown.out

        BROKEN.discard(sink)
        replayed = await run_tracks(servers, "dlq", "replay", str(seq))
        assert replayed.code == 0, replayed
        assert replayed.out.startswith(f"{seq} → tracks.{src}.completed.{cid}")

        async def booked() -> bool:
            return (await step_statuses(pool, sink)).get(cid) == "completed"

        await eventually(booked, timeout=30, what="the replayed step to complete")
        again = await run_tracks(servers, "dlq", "replay", str(seq))

    output = await pool.fetchval(
        "SELECT output FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, sink
    )
    assert output == {"booked": 42}
    with pytest.raises(NotFoundError):
        await js.get_msg("DLQ", seq)
    replays = await pool.fetch(
        "SELECT details FROM processing_logs "
        "WHERE correlation_id = $1 AND track_id = $2 AND event_type = 'replayed'",
        cid,
        sink,
    )
    assert [(r["details"]["dlqSeq"], r["details"]["originalSubject"]) for r in replays] == [
        (seq, f"tracks.{src}.completed.{cid}")
    ]
    assert await event_counts(pool, src, "completed") == {cid: 1}
    assert await event_counts(pool, sink, "completed") == {cid: 1}
    assert again.code == 1
    assert again.err.strip() == f"Error: no dead letter with sequence {seq} in the DLQ stream"


async def test_replay_all_of_one_track_and_purge_another(
    settings: Settings, servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """``replay --all --track A`` replays A's dead letters only (each run completes); ``purge --track B``
    asks first (no answer: nothing is deleted), and with ``--yes`` deletes B's dead letters only."""
    src, other = f"{unique}-src", f"{unique}-other"
    BROKEN.update({src, other})
    client = TracksClient(js)
    async with Runtime(list(bookkeeping(unique)), settings=settings):
        src_runs = [(await client.trigger(src, {"n": n}))[0] for n in range(3)]
        for n in range(2):
            await client.trigger(other, {"n": n})
        await _dead_letters(js, src, 3)
        await _dead_letters(js, other, 2)
        listed = await run_tracks(servers, "dlq", "ls", "--track", other, "--json")
        assert [json.loads(line)["track"] for line in listed.out.splitlines()] == [other, other]

        BROKEN.discard(src)
        replayed = await run_tracks(servers, "dlq", "replay", "--all", "--track", src)
        assert replayed.code == 0, replayed
        assert len(replayed.out.splitlines()) == 3

        async def all_booked() -> bool:
            return await step_statuses(pool, f"{unique}-sink") == dict.fromkeys(src_runs, "completed")

        await eventually(all_booked, timeout=30, what="the three replayed runs to complete downstream")

    assert await stream_subjects(js, "DLQ", f"dlq.{src}.*") == {}
    assert len(await stream_subjects(js, "DLQ", f"dlq.{other}.*")) == 2
    refused = await run_tracks(servers, "dlq", "purge", "--track", other)
    assert refused.code == 1
    assert "Aborted" in refused.err
    assert len(await stream_subjects(js, "DLQ", f"dlq.{other}.*")) == 2
    purged = await run_tracks(servers, "dlq", "purge", "--track", other, "--yes")
    assert purged.code == 0, purged
    assert purged.out.strip() == "purged 2 dead letter(s)"
    assert await stream_subjects(js, "DLQ", f"dlq.{other}.*") == {}


async def test_replay_of_a_step_still_running_is_refused_unless_forced(
    settings: Settings, servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A dead letter whose step the ledger still holds ``running`` (as when its max-deliveries
    advisory was lost) would be taken for a duplicate and dropped: ``replay`` refuses in one line and
    keeps the dead letter; ``--force`` marks the step failed first and the replay completes it."""
    other, cid = f"{unique}-other", f"{unique}-stuck"
    BROKEN.add(other)
    async with Runtime(list(bookkeeping(unique)), settings=settings):
        await TracksClient(js).trigger(other, {"n": 5}, correlation_id=cid)

        async def failed() -> bool:
            return (await step_statuses(pool, other)).get(cid) == "failed"

        await eventually(failed, timeout=30, what="the step to fail")
        seq = (await js.get_last_msg("DLQ", f"dlq.{other}.{cid}")).seq
        assert seq is not None
        await pool.execute(
            "UPDATE track_steps SET status = 'running', finished_at = NULL "
            "WHERE correlation_id = $1 AND track_id = $2",
            cid,
            other,
        )
        BROKEN.discard(other)
        refused = await run_tracks(servers, "dlq", "replay", str(seq))
        assert refused.code == 1, refused
        [line] = refused.err.strip().splitlines()
        assert f"step {other} of run {cid} is still 'running'" in line
        assert (await js.get_msg("DLQ", seq)).seq == seq
        forced = await run_tracks(servers, "dlq", "replay", str(seq), "--force")
        assert forced.code == 0, forced

        async def completed() -> bool:
            return (await step_statuses(pool, other)).get(cid) == "completed"

        await eventually(completed, timeout=30, what="the forced replay to complete the step")

    forced_rows = await pool.fetch(
        "SELECT error_type, details FROM processing_logs "
        "WHERE correlation_id = $1 AND track_id = $2 AND error_type = 'ForcedReplay'",
        cid,
        other,
    )
    assert [r["details"]["dlqSeq"] for r in forced_rows] == [seq]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["dlq", "replay", "999999999"], "no dead letter with sequence 999999999 in the DLQ stream"),
        (["dlq", "show", "999999999"], "no dead letter with sequence 999999999 in the DLQ stream"),
        (["dlq", "replay"], "give either a dead letter SEQ or --all"),
        (["dlq", "replay", "1", "--track", "x"], "--track goes with --all"),
        (["dlq", "ls", "--track", "bad.name"], "track name 'bad.name' must be"),
    ],
    ids=["replay-unknown", "show-unknown", "replay-nothing", "replay-seq-and-track", "bad-track"],
)
async def test_dlq_user_errors_are_one_line_and_exit_1(
    servers: Servers, migrated: None, js: JetStreamContext, args: list[str], expected: str
) -> None:
    result = await run_tracks(servers, *args)
    assert result.code == 1, result
    assert "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    assert expected in line
    assert result.out == ""
