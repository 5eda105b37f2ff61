"""The CLI never hangs and never leaks: bounded connects, one line, documented exit codes, masked secrets.

Unreachable servers are real closed ports (bound, then closed) or a socket that accepts and
never answers; elapsed times are a generous "never hangs" sanity bound, not a performance claim.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Servers
from tests.support.actor_process import REPO, tracks_command
from tests.support.servers import own_nats
from tracks.embedded._process import free_port

NEVER_HANGS_S = 30.0


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    elapsed: float

    @property
    def line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        return lines[0]


async def tracks(*args: str, cwd: Path = REPO, **env: str | None) -> Ran:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRACKS_")}
    full.update({k: v for k, v in env.items() if v is not None})
    began = time.monotonic()
    done = await asyncio.to_thread(
        subprocess.run,
        [*tracks_command(), *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        input="",
    )
    return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


def closed_port() -> int:
    """A port nothing listens on: bound, then closed."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a stuck server, a black hole)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


NATS_COMMANDS = [
    ["alerts", "check"],
    ["dlq", "ls"],
    ["dlq", "show", "1"],
    ["dlq", "replay", "1"],
    ["dlq", "purge", "--yes"],
    ["trigger", "some-track"],
    ["run", "tracks.examples.receipts:receipts"],
]
PG_COMMANDS = [
    ["chain", "some-cid"],
    ["status", "some-cid"],
    ["proceed", "some-cid"],
    ["resume", "some-cid"],
    ["schedule", "ls"],
    ["schedule", "next", "nightly"],
    ["schedule", "history", "nightly"],
    ["schedule", "add", "nightly", "@daily", "--target", "t"],
    ["schedule", "enable", "nightly"],
    ["schedule", "disable", "nightly"],
    ["schedule", "rm", "nightly"],
    ["retention", "run"],
    ["db", "migrate"],
]


@pytest.mark.parametrize("args", NATS_COMMANDS, ids=" ".join)
async def test_nats_unreachable_is_one_masked_line_exit_4(servers: Servers, args: list[str]) -> None:
    port = closed_port()
    ran = await tracks(
        *args,
        TRACKS_NATS_URL=f"nats://user:password@127.0.0.1:{port}",
        TRACKS_DATABASE_URL=servers.database_url,
    )
    assert ran.code == 4, ran
    assert ran.line == f"Error: cannot reach NATS at 127.0.0.1:{port}: connection refused", ran
    assert "password" not in ran.out + ran.err
    assert ran.elapsed < NEVER_HANGS_S


@pytest.mark.parametrize("args", PG_COMMANDS, ids=" ".join)
async def test_postgres_unreachable_is_one_masked_line_exit_4(servers: Servers, args: list[str]) -> None:
    """NATS is fine here; retention needs both and asks PostgreSQL first."""
    port = closed_port()
    ran = await tracks(
        *args,
        TRACKS_NATS_URL=servers.nats_url,
        TRACKS_DATABASE_URL=f"postgresql://user:password@127.0.0.1:{port}/tracks",
    )
    assert ran.code == 4, ran
    assert ran.line == f"Error: cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused", ran
    assert "password" not in ran.out + ran.err
    assert ran.elapsed < NEVER_HANGS_S


async def test_a_silent_server_is_given_up_after_connect_timeout(servers: Servers, silent_port: int) -> None:
    """A server that accepts and never answers: ``--connect-timeout`` bounds the wait."""
    ran = await tracks(
        "--connect-timeout",
        "1",
        "alerts",
        "check",
        TRACKS_NATS_URL=f"nats://127.0.0.1:{silent_port}",
        TRACKS_DATABASE_URL=servers.database_url,
    )
    assert ran.code == 4, ran
    assert ran.line == f"Error: cannot reach NATS at 127.0.0.1:{silent_port}: no answer within 1s"
    pg = await tracks(
        "schedule",
        "ls",
        TRACKS_CONNECT_TIMEOUT_S="1",
        TRACKS_DATABASE_URL=f"postgresql://u@127.0.0.1:{silent_port}/tracks",
    )
    assert pg.code == 4, pg
    assert pg.line == f"Error: cannot reach PostgreSQL at 127.0.0.1:{silent_port}: no answer within 1s"
    assert max(ran.elapsed, pg.elapsed) < NEVER_HANGS_S


@pytest.mark.parametrize(
    "args", [["schedule", "ls"], ["chain", "no-such-run"], ["status", "no-such-run"]], ids=" ".join
)
async def test_postgres_only_commands_never_wait_for_nats(
    servers: Servers, migrated: None, silent_port: int, args: list[str]
) -> None:
    """With NATS a black hole and a 20 s connect timeout, these still answer: they never connect to it."""
    ran = await tracks(
        "--connect-timeout",
        "20",
        *args,
        TRACKS_NATS_URL=f"nats://127.0.0.1:{silent_port}",
        TRACKS_DATABASE_URL=servers.database_url,
    )
    assert ran.code in (0, 1), ran  # 1: "no records for ..." — a user error, not a wait
    assert "NATS" not in ran.err, ran
    assert ran.elapsed < 20, ran


@pytest.mark.parametrize(
    "args",
    [["dlq", "ls"], ["schedule", "ls"], ["status", "x"], ["alerts", "check"], ["trigger", "t"]],
    ids=" ".join,
)
async def test_read_only_commands_never_start_the_embedded_servers(tmp_path: Path, args: list[str]) -> None:
    data_dir = tmp_path / "data"
    ran = await tracks(*args, cwd=tmp_path, TRACKS_DATA_DIR=str(data_dir))
    assert ran.code == 4, ran
    assert ran.line.startswith("Error: no servers: "), ran
    assert "run `tracks dev up` or set TRACKS_NATS_URL / TRACKS_DATABASE_URL" in ran.line
    assert not data_dir.exists()  # nothing was started, nothing was created


async def test_an_unmigrated_database_says_run_db_migrate(
    servers: Servers, fresh_db: str, unique: str
) -> None:
    for args in (
        ["chain", "x"],
        ["status", "x"],
        ["schedule", "ls"],
        ["actor", "run", "tests.support.apps.actor_app"],
    ):
        ran = await tracks(
            *args, TRACKS_NATS_URL=servers.nats_url, TRACKS_DATABASE_URL=fresh_db, TRACKS_TEST_PREFIX=unique
        )
        assert ran.code == 5, ran
        assert "run `tracks db migrate`" in ran.line, ran
        assert "UndefinedTableError" not in ran.err


async def test_a_missing_stream_is_one_line_exit_5_not_a_retry(
    servers: Servers, migrated: None, tmp_path: Path
) -> None:
    """A NATS server where no actor ever ran: no TRACKS, no DLQ stream."""
    with own_nats(tmp_path) as bare:
        for args, stream in (
            (["trigger", "t"], "TRACKS"),
            (["run", "tracks.examples.receipts:receipts"], "TRACKS"),
            (["dlq", "ls"], "DLQ"),
            (["alerts", "check"], "DLQ"),
        ):
            ran = await tracks(*args, TRACKS_NATS_URL=bare.url, TRACKS_DATABASE_URL=servers.database_url)
            assert ran.code == 5, ran
            assert ran.line.startswith(f"Error: stream {stream} does not exist on NATS at "), ran
            assert "tracks actor run" in ran.line
            assert ran.elapsed < NEVER_HANGS_S


async def test_version_and_exit_code_table_in_help() -> None:
    version = await tracks("--version")
    assert version.code == 0
    assert version.out.startswith("tracks "), version
    helped = await tracks("--help")
    assert "Exit codes:" in helped.out
    assert "--connect-timeout" in helped.out
    for code in ("1", "2", "3", "4", "5"):
        assert re.search(rf"^ +{code}  \w", helped.out, re.MULTILINE), helped.out


async def test_a_bad_connect_timeout_is_a_usage_error() -> None:
    ran = await tracks("--connect-timeout", "0", "dlq", "ls")
    assert ran.code == 2, ran


async def test_a_wrong_password_is_one_masked_line(servers: Servers, tmp_path: Path) -> None:
    """NATS refuses the credentials: one line saying so, the password nowhere, bounded."""
    from tests.support.configured_nats import configured_nats

    with configured_nats(tmp_path, 'authorization { user: ops, password: "right-one" }') as nats:
        url = nats.url.replace("nats://", "nats://ops:wrong-one@")
        ran = await tracks("dlq", "ls", TRACKS_NATS_URL=url, TRACKS_DATABASE_URL=servers.database_url)
    assert ran.code == 4, ran
    assert ran.line.startswith(f"Error: NATS at 127.0.0.1:{nats.port} refused the credentials ("), ran
    assert "TRACKS_NATS_PASSWORD" in ran.line, ran
    assert "wrong-one" not in ran.out + ran.err
    assert ran.elapsed < NEVER_HANGS_S


async def test_a_refused_database_login_is_one_masked_line(servers: Servers) -> None:
    host = servers.database_url.split("@", 1)[1]
    url = f"postgresql://nobody_here:secret-pw@{host}"
    ran = await tracks("schedule", "ls", TRACKS_NATS_URL=servers.nats_url, TRACKS_DATABASE_URL=url)
    assert ran.code == 1, ran
    assert ran.line.startswith("Error: PostgreSQL at ") and "refused the login" in ran.line, ran
    assert "TRACKS_DATABASE_URL" in ran.line and "secret-pw" not in ran.err


async def test_an_unknown_log_format_is_a_usage_error() -> None:
    ran = await tracks("workflow", "show", "tracks.examples.receipts", TRACKS_LOG_FORMAT="yaml")
    assert ran.code == 2, ran
    last = ran.err.strip().splitlines()[-1]
    assert last == "Error: TRACKS_LOG_FORMAT=yaml is not a log format: use text or json", ran


def test_a_closed_pipe_is_not_reported_as_an_unreachable_server() -> None:
    """`tracks runs ls | head -5`: the reader went away. It was one line, ``Error: cannot reach a
    server: [Errno 32] Broken pipe``, with exit 4; click quiets it (exit 1, nothing printed)."""
    import click
    from click.testing import CliRunner

    from tracks.cli._common import async_command

    @click.command()
    @async_command
    async def noisy() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    result = CliRunner().invoke(noisy)
    assert (result.exit_code, result.output) == (1, "")


def test_a_bad_setting_is_one_line_naming_the_variable() -> None:
    from click.testing import CliRunner

    from tracks.cli.main import cli

    one = CliRunner().invoke(cli, ["runs", "ls"], env={"TRACKS_ACK_WAIT_S": "-1"})
    assert (one.exit_code, one.stderr) == (
        1,
        "Error: invalid setting TRACKS_ACK_WAIT_S: Input should be greater than 0\n",
    )
    two = CliRunner().invoke(cli, ["runs", "ls"], env={"TRACKS_ACK_WAIT_S": "-1", "TRACKS_DB_POOL_SIZE": "x"})
    assert two.exit_code == 1 and len(two.stderr.splitlines()) == 1
    assert "TRACKS_ACK_WAIT_S" in two.stderr and "TRACKS_DB_POOL_SIZE" in two.stderr
