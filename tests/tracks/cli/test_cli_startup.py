"""Read-only commands start without what they do not use (issue #14: answer within 200 ms).

No timing here (README "CLI behaviour" has the figures): each command runs in a fresh
interpreter against the suite's servers, and the test names what must not have been imported.
Re-adding an eager import of pydantic, nats-py or OpenTelemetry on one of these paths fails it.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import click
import pytest
from click.testing import CliRunner

from tests.conftest import Servers
from tests.support.actor_process import REPO
from tracks.bench.cli_startup import measure
from tracks.cli.main import COMMANDS, SUMMARIES, cli

RUNTIME = (
    "actors.runtime.process",
    "actors.client",
    "tracks.console.app",
    "tracks.bench.suite",
    "scheduler.service",
)
"""Never imported by a command that only reads."""
SLOW_LIBRARIES = (
    "pydantic",
    "pydantic_settings",
    "pydantic_core",
    "opentelemetry",
    "apscheduler",
    "prometheus_client",
    "psutil",
)
"""Each costs a read-only command tens of milliseconds of start-up; none of them needs one."""
PG_ONLY = (*RUNTIME, *SLOW_LIBRARIES, "nats")
"""What a command that reads only PostgreSQL never imports."""

_PROBE = """
import json, sys
from tracks.cli.main import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\nPROBE " + json.dumps({"code": code, "loaded": sorted(set(sys.modules))}), file=sys.stderr)
"""


def _run(servers: Servers | None, *argv: str) -> tuple[int, set[str], str]:
    """Run ``tracks argv`` in a fresh interpreter: exit code, modules it imported, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKS_")}
    if servers is not None:
        env |= {"TRACKS_NATS_URL": servers.nats_url, "TRACKS_DATABASE_URL": servers.database_url}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    err, _, probe = done.stderr.rpartition("\nPROBE ")
    assert probe, done.stderr
    report = json.loads(probe)
    return int(report["code"] or 0), set(report["loaded"]), err


def _among(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in loaded or any(m.startswith(n + ".") for m in loaded))


@pytest.fixture
async def run_row(pool: asyncpg.Pool, unique: str) -> str:
    cid = f"startup-{unique}"
    await pool.execute(
        """INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, definition)
           VALUES ($1, 'startup', 'running', $2, '{"tracks": {"only": []}}'::jsonb)""",
        cid,
        datetime.now(UTC),
    )
    await pool.execute(
        """INSERT INTO processing_logs (correlation_id, track_id, event_type, attempt, details, occurred_at)
           VALUES ($1, 'only', 'started', 1, '{}'::jsonb, now())""",
        cid,
    )
    return cid


async def test_commands_that_read_postgresql_import_neither_nats_nor_pydantic_nor_opentelemetry(
    servers: Servers, run_row: str, unique: str
) -> None:
    name = f"startup-{unique}"
    added = await asyncio.to_thread(
        _run, servers, "schedule", "add", name, "0 3 * * *", "--target", "startup", "--disabled"
    )
    assert added[0] == 0, added[2]
    for argv in (
        ["status", run_row],
        ["chain", run_row],
        ["runs", "ls", "--limit", "5"],
        ["runs", "show", run_row],
        ["limits"],
        ["schedule", "next", name],
        ["schedule", "history", name],
    ):
        code, loaded, err = await asyncio.to_thread(_run, servers, *argv)
        assert code in (0, 1), (argv, err)  # 1: e.g. no records yet for `chain`
        assert "Traceback" not in err, err
        assert _among(loaded, PG_ONLY) == [], argv


async def test_commands_that_read_nats_import_neither_pydantic_nor_opentelemetry(
    servers: Servers, js: object, migrated: None
) -> None:
    for argv in (["dlq", "ls"], ["alerts", "check"], ["schedule", "ls"]):
        code, loaded, err = await asyncio.to_thread(_run, servers, *argv)
        assert code in (0, 3), (argv, err)  # 3: an alert fires (other tests' dead letters)
        assert _among(loaded, (*RUNTIME, *SLOW_LIBRARIES)) == [], argv


def test_help_and_version_import_no_command_and_no_client_library() -> None:
    modules = tuple(target.split(":")[0] for target in COMMANDS.values())
    for argv in (["--help"], ["--version"]):
        code, loaded, err = _run(None, *argv)
        assert code == 0, err
        assert _among(loaded, (*PG_ONLY, "asyncpg", *modules)) == [], argv


def test_an_unreachable_database_is_reported_without_importing_nats() -> None:
    env_servers = Servers("nats://127.0.0.1:9", "postgresql://u@127.0.0.1:9/db", None, None, REPO)
    code, loaded, err = _run(env_servers, "--connect-timeout", "2", "runs", "ls")
    assert code == 4, err
    assert "cannot reach PostgreSQL at 127.0.0.1:9" in err
    assert _among(loaded, PG_ONLY) == []


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {
        line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.startswith("  ")
    }
    assert set(COMMANDS) <= listed
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert version.output == f"tracks {importlib.metadata.version('tracks')}\n"  # what pip installed


def test_each_summary_is_what_the_command_itself_shows_in_help() -> None:
    """``tracks --help`` shows :data:`SUMMARIES` instead of importing the commands: they must agree."""
    assert set(SUMMARIES) == set(COMMANDS)
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        for width in (20, 40, 60, 74, 200):
            shown = click.Command(name, help=SUMMARIES[name]).get_short_help_str(width)
            assert shown == command.get_short_help_str(width), (name, width)


async def test_the_startup_bench_times_every_read_only_command(
    servers: Servers, run_row: str, js: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKS_NATS_URL", servers.nats_url)
    monkeypatch.setenv("TRACKS_DATABASE_URL", servers.database_url)
    tracks = str(Path(sys.executable).with_name("tracks"))
    result = await asyncio.to_thread(measure, tracks, 1, REPO)  # this checkout as its own baseline
    timed = {row["command"] for row in result["commands"]}
    assert {"tracks status CID", "tracks runs ls", "tracks dlq ls", "tracks --help"} <= timed
    assert {row["command"] for row in result["baseline"]} == timed
    assert all(row["median_ms"] > 0 and row["median_cpu_ms"] >= 0 for row in result["commands"])
