"""What ``tracks retention run`` costs on a large ledger: a measurement, not a test.

    python -m tracks.bench.retention [--runs 200000] [--batch 5000] [--database-url postgresql://...]

Creates a throwaway database (``tracks_bench_retention_<hex>``) on the given server, or on a
PostgreSQL of its own started in a temporary directory, migrates it and fills it with ``--runs``
synthetic runs of 4 steps and 8 log rows each (half finished 40 days ago, half in the last day,
1 % of the old ones still running). Then, on two copies of that state, it times the
``processing_logs`` purge as it was (an anti-join against ``track_steps`` per batch) and as
:func:`actors.ledger.retention.purge` does it now (key-ordered batches, ``track_steps`` asked by
primary key), and reports seconds, batches, and ``track_steps`` sequential scans and rows read
(``pg_stat_user_tables``). The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from actors.ledger.retention import FINISHED, purge
from foundation.db import migrate
from tracks.bench.scratch import scratch_postgres

__all__ = ["measure"]

BEFORE_LOGS_SQL = """
DELETE FROM processing_logs WHERE id IN (
    SELECT p.id FROM processing_logs p
    WHERE p.occurred_at < $1
      AND NOT EXISTS (SELECT 1 FROM track_steps s
                      WHERE s.correlation_id = p.correlation_id AND s.status <> ALL($2::text[]))
    LIMIT $3)
"""
"""The ``processing_logs`` purge before key-ordered batches (for the comparison)."""
BEFORE_STEPS_SQL = """
DELETE FROM track_steps WHERE (correlation_id, track_id) IN (
    SELECT correlation_id, track_id FROM track_steps
    WHERE status = ANY($2::text[]) AND finished_at < $1 LIMIT $3)
RETURNING correlation_id
"""

_SEED = """
INSERT INTO track_steps (correlation_id, track_id, status, started_at, finished_at)
SELECT md5(g::text), t,
       CASE WHEN g % 2 = 0 AND g % 100 = 0 AND t = 'd' THEN 'running' ELSE 'completed' END,
       CASE WHEN g % 2 = 0 THEN $2::timestamptz ELSE now() END,
       CASE WHEN g % 2 = 0 AND g % 100 = 0 AND t = 'd' THEN NULL
            WHEN g % 2 = 0 THEN $2::timestamptz ELSE now() END
FROM generate_series(1, $1::int) g, unnest(ARRAY['a', 'b', 'c', 'd']) t;
INSERT INTO processing_logs (correlation_id, track_id, event_type, details, occurred_at)
SELECT md5(g::text), t, e, '{"payload": {"n": 1}}',
       CASE WHEN g % 2 = 0 THEN $2::timestamptz ELSE now() END
FROM generate_series(1, $1::int) g, unnest(ARRAY['a', 'b', 'c', 'd']) t,
     unnest(ARRAY['started', 'completed']) e
ORDER BY 5, 1
"""


async def _seeded(admin_dsn: str, runs: int) -> str:
    name = f"tracks_bench_retention_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        old = datetime.now(UTC) - timedelta(days=40)
        for statement in _SEED.split(";"):
            await conn.execute(statement, runs, old)
        await conn.execute("VACUUM ANALYZE track_steps, processing_logs")
    finally:
        await conn.close()
    return dsn


async def _stats(conn: asyncpg.Pool | asyncpg.Connection) -> tuple[int, int]:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    row = await conn.fetchrow(
        "SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE relname = 'track_steps'"
    )
    assert row is not None
    return int(row["seq_scan"]), int(row["seq_tup_read"])


async def _one(dsn: str, how: str, batch: int) -> dict[str, Any]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        scans0, read0 = await _stats(pool)
        cutoff = datetime.now(UTC) - timedelta(days=30)
        began = time.perf_counter()
        if how == "before":
            deleted = batches = 0
            while await pool.fetch(BEFORE_STEPS_SQL, cutoff, list(FINISHED), batch):
                batches += 1
            while True:
                status = await pool.execute(BEFORE_LOGS_SQL, cutoff, list(FINISHED), batch)
                batches += 1
                n = int(status.rsplit(" ", 1)[-1])
                deleted += n
                if n == 0:
                    break
        else:
            counts = await purge(pool, older_than_s=30 * 86400, payloads=None, batch=batch)
            deleted, batches = counts["processing_logs"], -1
        elapsed = time.perf_counter() - began
        await asyncio.sleep(0.6)
        scans1, read1 = await _stats(pool)
    finally:
        await pool.close()
    return {
        "how": how,
        "seconds": elapsed,
        "deleted_logs": deleted,
        "batches": batches,
        "seq_scans": scans1 - scans0,
        "seq_rows": read1 - read0,
    }


async def measure(admin_dsn: str, runs: int, batch: int) -> list[dict[str, Any]]:
    results = []
    for how in ("before", "after"):
        dsn = await _seeded(admin_dsn, runs)
        try:
            results.append(await _one(dsn, how, batch))
        finally:
            admin = await asyncpg.connect(admin_dsn)
            try:
                await admin.execute(f"DROP DATABASE IF EXISTS {dsn.rsplit('/', 1)[1]} WITH (FORCE)")
            finally:
                await admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tracks.bench.retention", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--database-url", default=None, help="a server to use (default: start one)")
    opts = parser.parse_args()
    with scratch_postgres("tracks-bench-retention-", opts.database_url) as dsn:
        results = asyncio.run(measure(dsn, opts.runs, opts.batch))
    print(f"{opts.runs} runs ({opts.runs * 8} log rows, half older than the cutoff), batch {opts.batch}")
    print(f"{'purge':8} {'seconds':>8} {'deleted':>9} {'track_steps seq scans':>22} {'rows they read':>15}")
    for r in results:
        print(
            f"{r['how']:8} {r['seconds']:8.2f} {r['deleted_logs']:9} {r['seq_scans']:22} {r['seq_rows']:15}"
        )


if __name__ == "__main__":
    main()
