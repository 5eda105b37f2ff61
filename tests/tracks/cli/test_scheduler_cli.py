"""``tracks schedule`` and ``tracks scheduler`` from the outside: CliRunner and a real subprocess."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import time

import asyncpg
import pytest
from click.testing import CliRunner
from nats.js.api import ConsumerConfig

from tests.conftest import Servers
from tracks.cli.main import cli


@pytest.fixture
def env(servers: Servers, migrated: None) -> dict[str, str]:
    return {"TRACKS_NATS_URL": servers.nats_url, "TRACKS_DATABASE_URL": servers.database_url}


@pytest.fixture
def run(env: dict[str, str]) -> object:
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


async def _row(dsn: str, name: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM job_schedules WHERE name = $1", name)
    finally:
        await conn.close()
    assert row is not None
    return row


def test_add_ls_next_enable_disable_history_rm(run, env: dict[str, str], unique: str) -> None:  # type: ignore[no-untyped-def]
    name = f"cli-{unique}"
    code, out = run(
        "schedule", "add", name, "30 2 * * 0", "--target", "reports", "--job-type", "report_generate",
        "--payload", '{"kind": "weekly"}', "--tz", "Europe/Berlin",
        "--priority", "high", "--overlap", "queue", "--timeout", "600", "--misfire-grace", "30",
    )  # fmt: skip
    assert code == 0, out
    assert f"added {name}" in out
    stored = asyncio.run(_row(env["TRACKS_DATABASE_URL"], name))
    assert (stored["timeout_s"], stored["misfire_grace_s"], stored["payload"]) == (
        600,
        30,
        '{"kind": "weekly"}',
    )
    assert (stored["job_type"], stored["target"], stored["overlap_policy"]) == (
        "report_generate",
        "reports",
        "queue",
    )
    code, out = run("schedule", "ls")
    line = next(row for row in out.splitlines() if row.startswith(name))
    assert "30 2 * * 0" in line
    assert "Europe/Berlin" in line
    assert "high" in line
    assert "queue" in line
    code, out = run("schedule", "next", name, "-n", "3")
    assert code == 0, out
    header, *lines = out.strip().splitlines()
    assert header.startswith("LOCAL (Europe/Berlin)")
    assert len(lines) == 3
    assert all("02:30:00 CE" in row for row in lines)  # CET or CEST, local time
    assert run("schedule", "disable", name) == (0, f"disabled {name}\n")
    _, out = run("schedule", "ls")
    assert " no " in next(row for row in out.splitlines() if row.startswith(name))
    assert run("schedule", "enable", name) == (0, f"enabled {name}\n")
    assert run("schedule", "history", name) == (0, f"no executions of {name} yet\n")
    assert run("schedule", "rm", name) == (0, f"removed {name}\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["add", "x-{u}", "61 * * * *", "--target", "t"],
            "invalid cron expression '61 * * * *': minute: 61 is out",
        ),
        (["add", "x-{u}", "* * * * * * *", "--target", "t"], "expected 5 fields"),
        (
            ["add", "x-{u}", "@daily", "--target", "t", "--tz", "Mars/Olympus"],
            "unknown time zone 'Mars/Olympus'",
        ),
        (["add", "x-{u}", "@daily", "--target", "a.b"], "target 'a.b' must be"),
        (["add", "x-{u}", "@daily", "--target", "t", "--payload", "[1]"], "--payload must be a JSON object"),
        (["enable", "missing-{u}"], "no schedule named 'missing-"),
        (["rm", "missing-{u}"], "no schedule named 'missing-"),
        (["next", "missing-{u}"], "no schedule named 'missing-"),
        (["history", "missing-{u}"], "no schedule named 'missing-"),
    ],
)
def test_user_errors_are_one_line(run, unique: str, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    code, out = run("schedule", *[a.replace("{u}", unique) for a in args])
    assert code == 1
    assert message in out
    assert "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_duplicate_name_is_a_user_error(run, unique: str) -> None:  # type: ignore[no-untyped-def]
    name = f"dup-{unique}"
    assert run("schedule", "add", name, "@hourly", "--target", "t")[0] == 0
    code, out = run("schedule", "add", name, "@hourly", "--target", "t")
    assert code == 1
    assert out.strip() == f"Error: a schedule named '{name}' already exists"
    run("schedule", "rm", name)


def test_scheduler_run_stops_cleanly_on_sigterm(env: dict[str, str], unique: str) -> None:
    full_env = {
        **os.environ,
        **env,
        "TRACKS_SCHEDULER_STANDARD_SCHEDULES": "false",
        "TRACKS_SCHEDULER_NAME_PREFIX": f"nothing-{unique}",
        "TRACKS_SCHEDULER_HISTORY_CONSUMER": f"history-{unique}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tracks.cli.main import main; main()", "scheduler", "run"],
        env=full_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "ready" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "scheduler exited early"
        assert "ready: 0 schedule(s)" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def test_history_shows_status_duration_and_errors(run, pool, unique: str) -> None:  # type: ignore[no-untyped-def]
    name = f"hist-{unique}"
    cli_run = functools.partial(asyncio.to_thread, run)  # the CLI runs its own event loop
    assert (await cli_run("schedule", "add", name, "0 * * * *", "--target", "t", "--disabled"))[0] == 0
    schedule_id = await pool.fetchval("SELECT id FROM job_schedules WHERE name = $1", name)
    await pool.execute(
        """INSERT INTO job_executions (schedule_id, correlation_id, status, scheduled_for, started_at,
                                       completed_at, error_message, execution_metadata)
           VALUES ($1, $2, 'completed', '2026-05-04 10:00Z', '2026-05-04 10:00:00.1Z',
                   '2026-05-04 10:00:02.6Z', NULL, '{}'),
                  ($1, $3, 'failed', '2026-05-04 11:00Z', '2026-05-04 11:00:00Z', '2026-05-04 11:00:01Z',
                   'OSError: disk full', '{}'),
                  ($1, $4, 'skipped', '2026-05-04 12:00Z', '2026-05-04 12:00:00Z', '2026-05-04 12:00:00Z',
                   NULL, '{"reason": "overlap: the previous run is unfinished"}')""",
        schedule_id, f"a{unique}", f"b{unique}", f"c{unique}",
    )  # fmt: skip
    code, out = await cli_run("schedule", "history", name)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("SCHEDULED FOR")
    assert lines[1].split()[:4] == ["2026-05-04", "12:00:00", "UTC", "skipped"]
    assert lines[1].endswith("overlap: the previous run is unfinished")
    assert "failed" in lines[2]
    assert lines[2].endswith("OSError: disk full")
    assert "completed" in lines[3]
    assert "2.5s" in lines[3]
    await cli_run("schedule", "rm", name)


async def test_add_warns_or_refuses_when_nothing_consumes_the_target(run, js, unique: str) -> None:  # type: ignore[no-untyped-def]
    """A target is consumed when a track's durable consumer filters its run subject, or when a
    --module declares it; otherwise add warns (exit 0) and --strict refuses (exit 1, nothing added)."""
    cli_run = functools.partial(asyncio.to_thread, run)
    served, lonely = f"served{unique}", f"lonely{unique}"
    await js.add_consumer(
        "TRACKS",
        ConsumerConfig(
            durable_name=served, filter_subjects=[f"tracks.{served}.run", f"tracks.{served}.run.*"]
        ),
    )
    try:
        code, out = await cli_run("schedule", "add", f"ok-{unique}", "@daily", "--target", served, "--strict")
        assert code == 0 and "warning" not in out, out
        code, out = await cli_run("schedule", "add", f"lone-{unique}", "@daily", "--target", lonely)
        assert code == 0, out
        assert f"warning: no workflow or track consumes tracks.{lonely}.run.*" in out
        code, out = await cli_run(
            "schedule", "add", f"strict-{unique}", "@daily", "--target", lonely, "--strict"
        )
        assert code == 1
        assert out.strip() == (
            f"Error: schedule 'strict-{unique}' not added: no workflow or track consumes '{lonely}' "
            "(--strict); start its actor first, name its workflow with --module, or drop --strict"
        )
        assert (await cli_run("schedule", "next", f"strict-{unique}"))[0] == 1  # not added
        code, out = await cli_run(
            "schedule", "add", f"mod-{unique}", "@daily", "--target", "b", "--strict",
            "--module", "tests.support.apps.diamond_app:diamond",
        )  # fmt: skip
        assert code == 0 and "warning" not in out, out

        code, out = await cli_run("schedule", "ls")
        lines = {row.split()[0]: row for row in out.splitlines()}
        assert "CONSUMED" in out.splitlines()[0]
        assert " yes " in lines[f"ok-{unique}"].split(served, 1)[1]
        assert " NO " in lines[f"lone-{unique}"]
        code, out = await cli_run("schedule", "ls", "--json")
        wire = {s["name"]: s for s in json.loads(out)}
        assert wire[f"ok-{unique}"]["consumed"] is True
        assert wire[f"lone-{unique}"]["consumed"] is False
    finally:
        await js.delete_consumer("TRACKS", served)
        for name in ("ok", "lone", "mod"):
            await cli_run("schedule", "rm", f"{name}-{unique}")


def test_without_nats_ls_and_add_say_they_cannot_tell(env: dict[str, str], unique: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL alone still lists and adds schedules; whether a target is consumed is unknown."""
    runner = CliRunner()
    no_nats = {**env, "TRACKS_NATS_URL": "", "TRACKS_DATA_DIR": str(tmp_path)}
    name = f"nonats-{unique}"
    result = runner.invoke(cli, ["schedule", "add", name, "@daily", "--target", "t", "--strict"], env=no_nats)
    assert result.exit_code == 1
    assert "cannot tell whether anything consumes 't' (--strict)" in result.output
    result = runner.invoke(cli, ["schedule", "add", name, "@daily", "--target", "t"], env=no_nats)
    assert result.exit_code == 0, result.output
    assert "warning: cannot tell which targets are consumed: no servers" in result.output
    result = runner.invoke(cli, ["schedule", "ls", "--json"], env=no_nats)
    assert result.exit_code == 0, result.output
    wire = json.loads(result.output[result.output.index("[") :])
    assert next(s for s in wire if s["name"] == name)["consumed"] is None
    assert runner.invoke(cli, ["schedule", "rm", name], env=no_nats).exit_code == 0
