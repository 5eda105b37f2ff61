"""Read-only commands start without importing the runtime; ``tracks --help`` still lists every command."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from tracks.cli.main import COMMANDS, cli

HEAVY = (
    "actors.runtime.process",
    "actors.client",
    "tracks.console.app",
    "tracks.bench.suite",
    "scheduler.service",
)

_PROBE = """
import sys
from click.testing import CliRunner
from tracks.cli.main import cli
result = CliRunner().invoke(cli, [*sys.argv[1:], "--help"])
assert result.exit_code == 0, result.output
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


def _loaded_by(*argv: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    return [m for m in out.split(",") if m]


def test_read_only_commands_do_not_import_the_runtime() -> None:
    for argv in (["status"], ["chain"], ["runs", "ls"], ["runs", "show"]):
        assert _loaded_by(*argv) == [], argv


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {
        line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.startswith("  ")
    }
    assert set(COMMANDS) <= listed
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("tracks ")
