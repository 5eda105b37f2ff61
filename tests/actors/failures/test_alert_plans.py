"""The failure-rate alert reads rows in proportion to failures, not to the hour's events.

A log with 60,000 completions of a healthy track in the window and a failing track with 100
dead-lettered failures: the check finds the failing track (exact numbers) through the partial
index of migration 0013, and no node of its plan reads more than a few hundred rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from actors.failures.alerts import _RATES_SQL, failure_rates, load_alert_settings
from foundation.db import create_pool, migrate

BUSY = 60_000

_SEED = f"""
INSERT INTO processing_logs (correlation_id, track_id, event_type, details, occurred_at)
SELECT md5(g::text), 'busy', CASE WHEN g % 2 = 0 THEN 'completed' ELSE 'started' END, '{{}}',
       now() - make_interval(secs => g % 3000)
FROM generate_series(1, {2 * BUSY}) g;
INSERT INTO processing_logs (correlation_id, track_id, event_type, details, occurred_at)
SELECT md5('bad' || g), 'bad', 'failed', '{{"deadLettered": true}}', now() - make_interval(secs => g)
FROM generate_series(1, 100) g;
INSERT INTO processing_logs (correlation_id, track_id, event_type, details, occurred_at)
SELECT md5('retry' || g), 'busy', 'failed', '{{"deadLettered": false}}', now() - make_interval(secs => g)
FROM generate_series(1, 500) g;
INSERT INTO processing_logs (correlation_id, track_id, event_type, details, occurred_at)
SELECT md5('ok' || g), 'bad', 'completed', '{{}}', now() - make_interval(secs => g)
FROM generate_series(1, 10) g;
INSERT INTO processing_logs (correlation_id, track_id, event_type, details, occurred_at)
SELECT md5('one' || g), 'busy', 'failed', '{{"deadLettered": true}}', now() - make_interval(secs => g)
FROM generate_series(1, 3) g
"""


@pytest.fixture
async def seeded(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn)
        for statement in _SEED.split(";"):
            await conn.execute(statement)
        await conn.execute("ANALYZE processing_logs")
    finally:
        await conn.close()
    pool = await create_pool(fresh_db, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


async def test_failure_rate_check_is_bounded(seeded: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKS_ALERT_MIN_EVENTS", "20")
    settings = load_alert_settings()
    (alert,) = await failure_rates(seeded, settings)
    assert (alert.key, alert.details["failed"], alert.details["total"]) == ("bad", 100, 110)
    args = (settings.window_s, None, settings.failure_rate, settings.min_events)
    explained = await seeded.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {_RATES_SQL}", *args)
    nodes = _nodes(explained[0]["Plan"])
    assert any(n.get("Index Name") == "processing_logs_dead_lettered" for n in nodes), nodes
    for node in nodes:
        read = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        where = node.get("Relation Name") or node.get("Index Name")
        assert where is None or read <= 1_000, f"{node['Node Type']} on {where} read {read} rows"
