"""``--json`` on the commands that list or show: camelCase keys, ISO-8601 UTC times, full values."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import Servers
from tests.support.cli import run_tracks
from tracks.cli.main import cli

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
FREE_FORM = {"payload", "metadata", "details", "headers", "body"}
"""Values that hold the user's own data: their keys are whatever the user wrote."""


def assert_wire(value: Any, where: str = "$") -> None:
    """Every key camelCase, every ``...At``/``...For`` value a UTC time (or null)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            assert_wire(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            assert CAMEL.match(key), f"{where}.{key} is not camelCase"
            if key.endswith(("At", "For")) and item is not None:
                assert UTC_TIME.match(item), f"{where}.{key} = {item!r} is not an ISO-8601 UTC time"
            if key not in FREE_FORM:
                assert_wire(item, f"{where}.{key}")


@pytest.fixture
def run(servers: Servers, migrated: None) -> Any:
    """``tracks ARGS`` in this process; its stdout as JSON when ``--json`` is among ARGS."""
    runner = CliRunner()
    env = {"TRACKS_NATS_URL": servers.nats_url, "TRACKS_DATABASE_URL": servers.database_url}

    def invoke(*args: str) -> Any:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    return invoke


def test_schedule_ls_next_history_json(run: Any, unique: str) -> None:
    name = f"json-{unique}"
    run("schedule", "add", name, "0 8 * * 1-5", "--target", "reports", "--tz", "Asia/Tokyo")
    try:
        listed = run("schedule", "ls", "--json")
        assert_wire(listed)
        [mine] = [s for s in listed if s["name"] == name]
        assert (mine["cron"], mine["timezone"], mine["target"], mine["enabled"]) == (
            "0 8 * * 1-5",
            "Asia/Tokyo",
            "reports",
            True,
        )
        assert mine["nextFireAt"].endswith("T23:00:00.000Z")  # 08:00 in Tokyo
        upcoming = run("schedule", "next", name, "-n", "3", "--json")
        assert len(upcoming) == 3 and all(UTC_TIME.match(t) for t in upcoming)
        assert upcoming[0] == mine["nextFireAt"]
        assert run("schedule", "history", name, "--json") == []
    finally:
        run("schedule", "rm", name)


def test_workflow_show_json_needs_no_server() -> None:
    result = CliRunner().invoke(cli, ["workflow", "show", "tracks.examples.receipts", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert_wire(shown)
    assert shown["name"] == "receipts"
    assert [t["name"] for t in shown["tracks"]] == ["gmail", "drive", "file_management", "freee"]
    assert shown["tracks"][1]["after"] == ["gmail"]


async def test_retention_run_json(servers: Servers, migrated: None) -> None:
    result = await run_tracks(servers, "retention", "run", "--older-than-days", "36500", "--json")
    assert result.code == 0, result
    purged = json.loads(result.out)
    assert_wire(purged)
    assert purged["olderThanS"] == 36500 * 86400
    purged_kinds = {"trackSteps", "processingLogs", "workflowRuns", "jobExecutions", "payloads"}
    assert set(purged["purged"]) == purged_kinds


async def test_status_takes_json_too(servers: Servers, migrated: None) -> None:
    """Its output is JSON either way; ``--json`` is accepted like on every command that shows."""
    result = await run_tracks(servers, "status", "no-such-run", "--json")
    assert result.code == 1, result
    assert "no such option" not in result.err.lower()
