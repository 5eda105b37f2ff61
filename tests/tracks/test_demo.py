"""``tracks demo`` runs the receipts product on its sample mail and says where everything went."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Servers
from tests.support.actor_process import REPO, tracks_command


@pytest.mark.timeout(180)
async def test_the_demo_runs_the_product_and_prints_where_the_results_are(
    servers: Servers, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
        "TRACKS_DATA_DIR": str(tmp_path),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [*tracks_command(), "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
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
