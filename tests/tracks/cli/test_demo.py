"""``tracks demo`` runs the receipts product on its sample mail and says where everything went."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Servers
from tests.support.actor_process import REPO, tracks_command


@pytest.mark.timeout(300)
async def test_the_demo_runs_the_product_and_prints_where_the_results_are(
    servers: Servers, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
        "TRACKS_DATA_DIR": str(tmp_path),
    }
    done = await _tracks(env, "demo")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "12 messages, 11 with receipts handed to receipt_process" in out
    assert "invoice-0931.pdf: unreadable PDF" in out  # the malformed attachment, dead-lettered
    assert "waits at the manual gate 'approve'" in out and "approved, filed and booked" in out
    assert "duplicate_cleanup: 1 exact, 1 near" in out
    home = tmp_path / "receipts-demo"
    assert (home / "reports" / "2026-10" / "report-2026-10.html").is_file()
    assert (home / "drive" / "2026" / "10" / "2026-10-03_AWS_42.17USD.pdf").is_file()
    assert len(list((home / "backups").glob("backup-*.dump"))) == 1

    # the runs are in the default database: what an operator looks at next shows them
    listed = await _tracks(env, "runs", "ls", "--workflow", "receipt_review", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"status": "completed"' in listed.stdout
    # and the demo runs again: the sample messages are new to it once more
    again = await _tracks(env, "demo")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "12 messages, 11 with receipts handed to receipt_process" in again.stdout


@pytest.mark.timeout(60)
async def test_the_demo_refuses_a_database_with_real_product_data(
    servers: Servers, migrated: None, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
        "TRACKS_DATA_DIR": str(tmp_path),
    }
    conn = await asyncpg.connect(servers.database_url)
    key = f"<real-{os.getpid()}@example>"
    await conn.execute(
        "INSERT INTO receipts_seen_messages (message_id, source) VALUES ($1, 'imap:mail.example/INBOX')", key
    )
    try:
        done = await _tracks(env, "demo")
    finally:
        await conn.execute("DELETE FROM receipts_seen_messages WHERE message_id = $1", key)
        await conn.close()
    assert done.returncode == 1
    assert "holds receipts read from imap:mail.example/INBOX" in done.stderr


async def _tracks(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [*tracks_command(), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
