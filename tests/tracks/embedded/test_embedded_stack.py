"""The embedded default: started once, reused, adopted after a lost state file, stopped cleanly.

Also: as root, PostgreSQL (run as the ``tracks-pg`` user) works from a private directory
without its permissions being touched, and a start that fails leaves no server behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tracks.embedded import EmbeddedStack, PostgresServer, postgres_bin_dir
from tracks.embedded import postgres as postgres_module
from tracks.embedded._process import pid_alive


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    s = EmbeddedStack(tmp_path / "data")
    try:
        yield s
    finally:  # whatever the test did: down finds the servers even without state.json
        try:
            s.down()
        finally:
            s.nats.stop()
            s.postgres.delete_data()


async def test_up_reuses_adopts_and_stops(stack: EmbeddedStack) -> None:
    nats_url, db_url = stack.up()
    assert ":4222" not in nats_url
    assert ":5432/" not in db_url
    first = {s.name: s.pid for s in stack.status()}
    assert stack.up() == (nats_url, db_url)  # already running: reused, not restarted
    assert {s.name: s.pid for s in stack.status()} == first

    (stack.data_dir / "state.json").unlink()  # a lost state file must not start a second postmaster
    again = EmbeddedStack(stack.data_dir)
    _, db_url_again = again.up()
    assert again.postgres.pid == first["postgres"]
    assert again.nats.pid == first["nats"]  # adopted, not a second server beside an orphan
    conn = await asyncpg.connect(db_url_again)
    assert await conn.fetchval("SELECT current_database()") == "tracks"
    await conn.close()

    stopped = again.down()
    assert "postgres" in stopped
    assert not pid_alive(first["postgres"])
    assert not pid_alive(first["nats"])
    assert all(not s.running for s in again.status())


def test_down_without_a_state_file_still_stops_both(stack: EmbeddedStack) -> None:
    stack.up()
    pids = [stack.nats.pid, stack.postgres.pid]
    (stack.data_dir / "state.json").unlink()
    assert EmbeddedStack(stack.data_dir).down() == ["nats", "postgres"]
    assert not any(pid_alive(pid) for pid in pids)


def test_a_failed_up_stops_what_it_started(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: PostgresServer, timeout: float = 30.0, *, daemon: bool = False) -> None:
        raise RuntimeError("PostgreSQL would not start")

    monkeypatch.setattr(PostgresServer, "start", fail)
    with pytest.raises(RuntimeError, match="would not start"):
        stack.up()
    nats_pid = json.loads((stack.nats.data_dir / "server.json").read_text())["pid"]
    assert not pid_alive(nats_pid)
    assert "pid" not in json.loads((stack.data_dir / "state.json").read_text())["nats"]


def test_a_postgres_that_fails_to_get_ready_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[int | None] = []

    def fail(self: PostgresServer, user: object) -> None:
        spawned.append(self.pid)
        raise RuntimeError("no database")

    monkeypatch.setattr(PostgresServer, "_ensure_database", fail)
    server = PostgresServer(tmp_path / "pg", fast=True)
    try:
        with pytest.raises(RuntimeError, match="no database"):
            server.start(daemon=True)
        assert spawned
        assert spawned[0] is not None
        assert not pid_alive(spawned[0])
    finally:
        server.delete_data()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user (tracks-pg)")
def test_as_root_postgres_runs_from_a_private_directory_untouched(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A clone in a ``mktemp -d`` directory: its venv's binaries and the data dir are out of reach."""
    private = Path(tempfile.mkdtemp(prefix="tracks-private-"))  # 0700, like mktemp -d
    # pgserver as if installed in a venv inside the private directory
    site = private / "venv" / "site-packages"
    (site / "pgserver").mkdir(parents=True)
    real_pginstall = postgres_bin_dir().parent
    (site / "pgserver" / "pginstall").symlink_to(real_pginstall)
    (site / "pgserver.libs").symlink_to(real_pginstall.parent.parent / "pgserver.libs")
    monkeypatch.setattr(postgres_module, "postgres_bin_dir", lambda: site / "pgserver" / "pginstall" / "bin")
    server = PostgresServer(private / "data" / "postgres", fast=True)
    caplog.set_level(logging.WARNING, logger="tracks.embedded.postgres")
    try:
        server.start()
        assert server.pid is not None
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # nothing chmod-ed
        exe = os.readlink(f"/proc/{server.pid}/exe")
        assert exe.startswith("/var/lib/tracks-pg/pginstall-")
        assert os.stat(f"/proc/{server.pid}").st_uid != 0
        cluster = server.pgdata.resolve()
        assert server.pgdata.is_symlink()
        assert cluster.is_relative_to("/var/lib/tracks-pg/clusters")
        assert any("cannot reach" in r.getMessage() for r in caplog.records)  # and says what it did

        server.restart()  # the same cluster, found through the link
        assert server.pgdata.resolve() == cluster
    finally:
        server.delete_data()
        shutil.rmtree(private, ignore_errors=True)
    assert not server.running
    assert not cluster.parent.exists()
