"""Retention's batches cost the same on a large ledger: no batch reads a whole table.

Before, each ``processing_logs`` batch anti-joined all of ``track_steps`` and each
``track_steps`` batch hashed the whole table (a sequential scan per batch). Here a ledger of
20,000 runs is seeded and each batch statement's plan is checked: no sequential scan, and no
node reads more than a few rows per row of the batch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from actors.ledger.retention import _LOGS_SQL, _STEPS_SQL, FINISHED
from foundation.db import migrate

RUNS = 20_000
BATCH = 500

_SEED = """
INSERT INTO track_steps (correlation_id, track_id, status, started_at, finished_at)
SELECT md5(g::text), t, CASE WHEN g % 100 = 0 AND t = 'd' THEN 'running' ELSE 'completed' END,
       $2::timestamptz, CASE WHEN g % 100 = 0 AND t = 'd' THEN NULL ELSE $2::timestamptz END
FROM generate_series(1, $1::int) g, unnest(ARRAY['a', 'b', 'c', 'd']) t;
INSERT INTO processing_logs (correlation_id, track_id, event_type, occurred_at)
SELECT md5(g::text), t, e, $2::timestamptz
FROM generate_series(1, $1::int) g, unnest(ARRAY['a', 'b', 'c', 'd']) t,
     unnest(ARRAY['started', 'completed']) e
"""


@pytest.fixture
async def ledger(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn)
        old = datetime.now(UTC) - timedelta(days=40)
        for statement in _SEED.split(";"):
            await conn.execute(statement, RUNS, old)
        await conn.execute("VACUUM ANALYZE track_steps, processing_logs")
        yield conn
    finally:
        await conn.close()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


async def _explain(conn: asyncpg.Connection, sql: str, *args: object) -> list[dict[str, Any]]:
    writes = conn.transaction()
    await writes.start()
    try:
        explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    finally:
        await writes.rollback()
    return _nodes(json.loads(explained)[0]["Plan"])


async def test_batches_read_their_rows_only(ledger: asyncpg.Connection) -> None:
    cutoff = datetime.now(UTC) - timedelta(days=30)
    plans = {
        "track_steps": await _explain(
            ledger, _STEPS_SQL, cutoff, list(FINISHED), BATCH, datetime.min.replace(tzinfo=UTC)
        ),
        "processing_logs": await _explain(ledger, _LOGS_SQL, cutoff, list(FINISHED), BATCH, 0),
    }
    for name, nodes in plans.items():
        for node in nodes:
            where = node.get("Relation Name") or node.get("Index Name")
            assert node["Node Type"] != "Seq Scan", f"{name}: a sequential scan of {where}"
            read = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
            assert where is None or read <= 4 * BATCH, f"{name}: {node['Node Type']} on {where} read {read}"
