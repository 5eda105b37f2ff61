"""The runtime's batch statements find their rows by key, whatever the planner was told.

Two states of a ledger made the planner read whole tables once per batch (a 400-row outcome
batch took 1.3 s instead of 12 ms, measured in ``tracks bench``):

- statistics taken just after a bulk delete, which say "empty" while new rows refill the pages:
  the planner went through an index on ``status``, hashed the whole table, or looped over the
  batch once per row;
- a generic plan cached while the tables were small (a connection keeps it): a sequential scan.

Here the tables are put in each state and the plan of every statement is checked: no node reads
more than a few rows per key of the batch, and no join loops.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from actors.ledger.runs import _COMPLETE_SQL
from actors.ledger.sql import CLAIM_SQL, WRITE_SQL
from actors.ledger.store import Claim, LogRow, StepFinish, claim_params, write_params
from foundation.db import create_pool, migrate

BATCH = 400
RUNS = 15_000
"""Live runs after the refill; each has steps a, b (completed) and c (running)."""
ROWS_PER_KEY = 10
"""A key finds its own few steps (and some dead versions): far below a table's 45,000 rows."""

_BULK_DELETED = """
INSERT INTO track_steps (correlation_id, track_id, status) SELECT 'old-' || g, 'a', 'completed'
    FROM generate_series(1, 80000) g;
INSERT INTO workflow_runs (correlation_id, workflow, status) SELECT 'old-' || g, 'w', 'completed'
    FROM generate_series(1, 20000) g;
INSERT INTO track_steps (correlation_id, track_id, status) VALUES ('zz-last', 'a', 'completed');
INSERT INTO workflow_runs (correlation_id, workflow, status) VALUES ('zz-last', 'w', 'failed');
DELETE FROM track_steps WHERE correlation_id LIKE 'old-%';
DELETE FROM workflow_runs WHERE correlation_id LIKE 'old-%';
VACUUM ANALYZE track_steps, workflow_runs
"""

_REFILL = f"""
INSERT INTO workflow_runs (correlation_id, workflow, status) SELECT 'run-' || g, 'w', 'running'
    FROM generate_series(1, {RUNS}) g;
INSERT INTO track_steps (correlation_id, track_id, status, attempts, output)
    SELECT 'run-' || g, t, CASE t WHEN 'c' THEN 'running' ELSE 'completed' END, 1, '{{"n": 1}}'
    FROM generate_series(1, {RUNS}) g, unnest(ARRAY['a', 'b', 'c']) t
"""


async def _run(conn: asyncpg.Connection, script: str) -> None:
    for statement in filter(str.strip, script.split(";")):  # VACUUM cannot run in a transaction
        await conn.execute(statement)


@pytest.fixture
async def ledger_db(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A runtime connection (the runtime pool's settings) to a migrated database of its own."""
    admin = await asyncpg.connect(fresh_db)
    try:
        await migrate(admin)
        for table in ("track_steps", "workflow_runs"):  # no statistics but the test's own
            await admin.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    finally:
        await admin.close()
    pool = await create_pool(fresh_db, max_size=1, batch_joins=True)
    try:
        async with pool.acquire() as conn:
            yield conn
    finally:
        await pool.close()


def _runs() -> list[str]:
    return [f"run-{1 + i * (RUNS // BATCH)}" for i in range(BATCH)]


def _statements() -> dict[str, tuple[str, tuple[str, ...]]]:
    at = datetime.now(UTC)
    fresh = [Claim(cid, "d", i, workflow="w", at=at) for i, cid in enumerate(_runs())]
    fan_in = [Claim(cid, "d", i, workflow="w", fan_in=("a", "b"), at=at) for i, cid in enumerate(_runs())]
    outcomes = [
        StepFinish("completed", LogRow(cid, "c", "completed", occurred_at=at), {"n": 2}, 1, ends_run=True)
        for cid in _runs()
    ]
    leaves = json.dumps([{"cid": cid, "leaves": ["a", "b"]} for cid in _runs()])
    return {
        "claim_step": (CLAIM_SQL, claim_params(fresh)),
        "claim_fan_in": (CLAIM_SQL, claim_params(fan_in)),
        "record_outcomes": (WRITE_SQL, write_params(outcomes)),
        "complete_runs": (_COMPLETE_SQL, (leaves,)),
    }


async def _prepare(conn: asyncpg.Connection) -> None:
    for name, (sql, args) in _statements().items():
        await conn.execute(f"PREPARE {name}({', '.join('text' for _ in args)}) AS {sql}")


async def _explain(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Each prepared statement run once, in a transaction rolled back; its plan's nodes."""
    plans = {}
    for name, (_, args) in _statements().items():
        params = ", ".join("'" + arg.replace("'", "''") + "'" for arg in args)  # EXECUTE takes no binds
        writes = conn.transaction()
        await writes.start()
        try:
            explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({params})")
        finally:
            await writes.rollback()
        plans[name] = _nodes(explained[0]["Plan"])
    return plans


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _assert_keyed(plans: dict[str, list[dict[str, Any]]], state: str) -> None:
    for name, nodes in plans.items():
        assert "Nested Loop" not in {n["Node Type"] for n in nodes}, f"{name}, {state}: a join loops per row"
        for node in nodes:
            kept, removed = node["Actual Rows"], node.get("Rows Removed by Filter", 0)
            read = (kept + removed + node.get("Rows Removed by Index Recheck", 0)) * node["Actual Loops"]
            where = node.get("Relation Name") or node.get("Index Name")
            assert where is None or read <= ROWS_PER_KEY * BATCH, (
                f"{name}, {state}: {node['Node Type']} on {where} read {read} rows for {BATCH} keys"
            )


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_statistics_that_say_empty(ledger_db: asyncpg.Connection, plan_mode: str) -> None:
    await _run(ledger_db, _BULK_DELETED)
    await _run(ledger_db, _REFILL)
    sizes = await ledger_db.fetch(
        "SELECT relpages, reltuples FROM pg_class WHERE relname IN ('track_steps', 'workflow_runs')"
    )
    assert all(r["reltuples"] <= 1 and r["relpages"] > 100 for r in sizes), sizes  # the premise
    await ledger_db.execute(f"SET plan_cache_mode = {plan_mode}")
    await _prepare(ledger_db)
    _assert_keyed(await _explain(ledger_db), f"statistics that say empty, {plan_mode}")


async def test_a_plan_cached_while_the_tables_were_small(ledger_db: asyncpg.Connection) -> None:
    await ledger_db.execute("SET plan_cache_mode = force_generic_plan")
    await _prepare(ledger_db)
    await _explain(ledger_db)  # the generic plans are made, on empty tables, and kept
    await _run(ledger_db, _REFILL)
    _assert_keyed(await _explain(ledger_db), "a generic plan made on empty tables")
