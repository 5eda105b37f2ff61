"""The embedded default: started once, reused, adopted after a lost state file, stopped cleanly."""

from __future__ import annotations

import asyncpg
import pytest

from tracks.embedded import EmbeddedStack
from tracks.embedded._process import pid_alive


@pytest.fixture
def stack(tmp_path):
    s = EmbeddedStack(tmp_path / "data")
    yield s
    s.down()


async def test_up_reuses_adopts_and_stops(stack):
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
