"""``tracks runs ls``, ``tracks runs show`` and ``tracks cancel`` as a user runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.support.cli import run_tracks
from tests.support.records import stream_subjects
from tracks.cli.runs_admin import parse_since

UNREACHABLE_NATS = "nats://127.0.0.1:9"


async def seed(
    pool: asyncpg.Pool, wf: str, statuses: list[str], *, age: timedelta, tag: str = ""
) -> list[str]:
    """Runs of ``wf`` started ``age`` ago and later, one second apart, newest last; long IDs."""
    start = datetime.now(UTC) - age
    cids = [f"{wf}-{tag}{i}-{'x' * 60}" for i in range(len(statuses))]
    await pool.executemany(
        """INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, finished_at, definition)
           VALUES ($1, $2, $3, $4::timestamptz,
                   CASE WHEN $3 = 'running' THEN NULL ELSE $4::timestamptz + interval '2 seconds' END,
                   '{"tracks": {"only": []}}'::jsonb)""",
        [
            (cid, wf, s, start + timedelta(seconds=i))
            for i, (cid, s) in enumerate(zip(cids, statuses, strict=True))
        ],
    )
    return cids


async def test_runs_ls_table_and_filters(servers, pool, unique):
    wf = f"ls-{unique}"
    old = await seed(pool, wf, ["completed", "failed"], age=timedelta(days=3))
    new = await seed(pool, wf, ["running", "completed"], age=timedelta(minutes=5), tag="new")
    # PostgreSQL only: the command works with NATS unreachable
    res = await run_tracks(servers, "runs", "ls", "--workflow", wf, nats_url=UNREACHABLE_NATS)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0].split() == [
        "CORRELATION",
        "ID",
        "WORKFLOW",
        "STATUS",
        "STARTED",
        "(UTC)",
        "FINISHED",
        "(UTC)",
        "DURATION",
    ]
    assert [line.split()[0] for line in lines[1:]] == [
        new[1],
        new[0],
        old[1],
        old[0],
    ]  # full IDs, newest first
    assert lines[1].split()[1:3] == [wf, "completed"] and lines[1].split()[3].endswith("Z")
    assert lines[1].split()[5] == "2.0s" and lines[2].split()[4:] == ["-", "-"]

    async def ids(*args: str) -> list[str]:
        got = await run_tracks(servers, "runs", "ls", "--workflow", wf, *args, nats_url=UNREACHABLE_NATS)
        assert got.code == 0, got.err
        return [line.split()[0] for line in got.out.splitlines()[1:]]

    assert await ids("--status", "failed") == [old[1]]
    assert await ids("--since", "2h") == [new[1], new[0]]
    since = (datetime.now(UTC) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await ids("--since", since, "--limit", "3") == [new[1], new[0], old[1]]
    none = await run_tracks(servers, "runs", "ls", "--workflow", f"{wf}-nothing", nats_url=UNREACHABLE_NATS)
    assert (none.code, none.out, none.err.strip()) == (0, "", "no runs match")


async def test_runs_ls_json(servers, pool, unique):
    wf = f"js-{unique}"
    [cid] = await seed(pool, wf, ["completed"], age=timedelta(minutes=1))
    res = await run_tracks(servers, "runs", "ls", "--workflow", wf, "--json", nats_url=UNREACHABLE_NATS)
    assert res.code == 0, res.err
    [run] = json.loads(res.out)
    assert set(run) == {
        "correlationId",
        "workflow",
        "status",
        "startedAt",
        "finishedAt",
        "durationS",
        "userId",
        "error",
    }
    assert (run["correlationId"], run["status"], run["durationS"]) == (cid, "completed", 2.0)
    assert run["startedAt"].endswith("Z")
    empty = await run_tracks(
        servers, "runs", "ls", "--workflow", f"{wf}-none", "--json", nats_url=UNREACHABLE_NATS
    )
    assert json.loads(empty.out) == []


async def test_runs_ls_refuses_a_bad_since(servers):
    res = await run_tracks(servers, "runs", "ls", "--since", "yesterday", nats_url=UNREACHABLE_NATS)
    assert res.code == 1
    assert res.err.strip().splitlines() == [
        "Error: --since 'yesterday' is neither an ISO-8601 time (2026-11-27T08:00:00Z) nor a duration "
        "(90s, 30m, 2h, 3d, 1w)"
    ]


def test_parse_since() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("90s", now) == now - timedelta(seconds=90)
    assert parse_since("2026-11-27T08:00:00") == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert parse_since("2026-11-27T08:00:00+02:00") == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


async def test_runs_show(servers, pool, unique):
    wf = f"show-{unique}"
    [cid] = await seed(pool, wf, ["running"], age=timedelta(minutes=1))
    await pool.execute(
        "INSERT INTO track_steps (correlation_id, track_id, status, attempts, error) "
        "VALUES ($1, 'only', 'failed', 2, 'Boom: it broke')",
        cid,
    )
    res = await run_tracks(servers, "runs", "show", cid, nats_url=UNREACHABLE_NATS)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[:3] == [f"run       {cid}", f"workflow  {wf}", "status    running"]
    assert "phase main" in lines
    step = next(line for line in lines if line.startswith("  only"))
    assert step.split()[:4] == ["only", "failed", "attempts", "2"] and step.endswith("error: Boom: it broke")
    wire = json.loads(
        (await run_tracks(servers, "runs", "show", cid, "--json", nats_url=UNREACHABLE_NATS)).out
    )
    assert wire["correlationId"] == cid and wire["currentStep"] == "only"
    assert wire["steps"][0]["attempts"] == 2 and wire["phases"][0]["name"] == "main"
    missing = await run_tracks(servers, "runs", "show", f"{cid}-nope", nats_url=UNREACHABLE_NATS)
    assert missing.code == 1
    assert (
        missing.err.strip() == f"Error: no workflow run with correlation ID {cid}-nope (see `tracks runs ls`)"
    )


async def test_cancel_from_the_command_line(servers, pool, js, unique):
    wf = f"cx-{unique}"
    running, finished = await seed(pool, wf, ["running", "completed"], age=timedelta(minutes=1))
    res = await run_tracks(servers, "cancel", running, "--reason", "wrong input")
    assert (res.code, res.out.strip()) == (0, f"cancelled run {running} (workflow {wf})"), res.err
    again = await run_tracks(servers, "cancel", running)
    assert again.code == 0, again.err
    assert again.out.strip() == f"run {running} was already cancelled; its cancellation was announced again"
    subject = f"tracks.workflow.{wf}.cancelled.{running}"
    assert await stream_subjects(js, "TRACKS", subject) == {subject: 1}
    row = await pool.fetchrow("SELECT status, error FROM workflow_runs WHERE correlation_id = $1", running)
    assert (row["status"], row["error"]) == ("cancelled", "cancelled: wrong input")

    done = await run_tracks(servers, "cancel", finished)
    assert (done.code, done.err.strip()) == (1, f"Error: run {finished} already completed; nothing to cancel")
    assert (
        await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", finished)
        == "completed"
    )
    unknown = await run_tracks(servers, "cancel", f"{wf}-nope")
    assert (unknown.code, unknown.err.strip()) == (1, f"Error: no workflow run with correlation ID {wf}-nope")
    resumed = await run_tracks(servers, "resume", running)
    assert resumed.code == 1
    assert "a cancelled run is not resumed" in resumed.err
    listed = await run_tracks(servers, "runs", "ls", "--workflow", wf, "--status", "cancelled", "--json")
    assert [r["correlationId"] for r in json.loads(listed.out)] == [running]


@pytest.mark.parametrize("args", [["runs", "--help"], ["runs", "ls", "--help"], ["cancel", "--help"]])
async def test_help(servers, args):
    res = await run_tracks(servers, *args)
    assert res.code == 0 and "Usage: tracks" in res.out
