"""The embedded PostgreSQL runs with the small-machine settings (fewer checkpoints, smaller WAL)."""

from __future__ import annotations

import os

import asyncpg
import pytest

from tracks.embedded.postgres import EMBEDDED_SETTINGS


@pytest.mark.skipif(bool(os.environ.get("TRACKS_DATABASE_URL")), reason="the suite uses a server of its own")
async def test_embedded_postgres_settings(pool: asyncpg.Pool) -> None:
    shown = {name: await pool.fetchval(f"SHOW {name}") for name in EMBEDDED_SETTINGS}
    assert shown == EMBEDDED_SETTINGS
