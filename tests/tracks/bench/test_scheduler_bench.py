"""The benchmark runs end to end at a tiny size and cleans up after itself."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import Servers
from tracks.bench.scheduler import run_scheduler_bench

pytestmark = pytest.mark.slow  # kills or restarts servers: CI runs it, `make test-fast` leaves it out


async def test_bench_smoke(servers: Servers, pool: asyncpg.Pool) -> None:
    result = await run_scheduler_bench(
        servers.nats_url,
        servers.database_url,
        schedules=20,
        seconds=2.0,
        rss_schedules=50,
        period_s=1,
        rss_settle_s=0.2,
    )
    lateness = result["lateness"]
    assert lateness["ticks_published"] >= 20
    assert lateness["publish_failures"] == 0
    assert 0 <= lateness["lateness_ms"]["p50"] <= lateness["lateness_ms"]["p99"] < 5000
    assert result["rss"]["loaded"]["line"].endswith("ready: 50 schedule(s)")
    assert result["rss"]["loaded"]["exit_code"] == 0
    assert result["rss"]["rss_mb"] > 10
    left = await pool.fetchval(
        "SELECT count(*) FROM job_schedules WHERE name LIKE $1", f"bench-{result['run']}-%"
    )
    assert left == 0
