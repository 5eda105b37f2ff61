"""How fast ``tracks runs ls`` stays with a million runs: a measurement, not a test.

    python -m tracks.bench.run_listing [--runs 1000000] [--database-url postgresql://...]

Creates a throwaway database (``tracks_bench_runs_<hex>``) on the given server, or on a
PostgreSQL of its own started in a temporary directory (as the test suite does), migrates it,
inserts ``--runs`` synthetic ``workflow_runs`` rows in one statement (20 workflows, started over
30 days; 90 % completed, 4 % failed, 3 % running, 2 % timed out, 1 % cancelled), runs ANALYZE,
then times the listing query of each filter (median and worst of ``--repeat`` runs, and the
index its plan reads) and one real ``tracks runs ls`` process per filter (start-up included).
The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from actors.ledger.listing import list_runs
from foundation.db import create_pool, migrate
from tracks.bench.scratch import scratch_postgres

__all__ = ["FILTERS", "measure"]

NOW = datetime.now(UTC)
FILTERS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "(none)": ({}, []),
    "--status running": ({"status": "running"}, ["--status", "running"]),
    "--status cancelled": ({"status": "cancelled"}, ["--status", "cancelled"]),
    "--workflow wf-7": ({"workflow": "wf-7"}, ["--workflow", "wf-7"]),
    "--since 2h": ({"since": NOW - timedelta(hours=2)}, ["--since", "2h"]),
    "--since 3d --status failed": (
        {"since": NOW - timedelta(days=3), "status": "failed"},
        ["--since", "3d", "--status", "failed"],
    ),
    "--workflow wf-7 --status failed": (
        {"workflow": "wf-7", "status": "failed"},
        ["--workflow", "wf-7", "--status", "failed"],
    ),
}

_SEED = """
INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, finished_at)
SELECT md5(g::text), 'wf-' || abs(hashtext(g::text) % 20),
       CASE WHEN g % 100 < 90 THEN 'completed' WHEN g % 100 < 94 THEN 'failed'
            WHEN g % 100 < 97 THEN 'running' WHEN g % 100 < 99 THEN 'timed_out' ELSE 'cancelled' END,
       $2::timestamptz - make_interval(secs => (g::float8 / $1) * 30 * 86400),
       CASE WHEN g % 100 BETWEEN 94 AND 96 THEN NULL
            ELSE $2::timestamptz - make_interval(secs => (g::float8 / $1) * 30 * 86400 - 5) END
FROM generate_series(1, $1) g
"""


_INDEXES = ("workflow_runs_started", "workflow_runs_workflow_started", "workflow_runs_status_started")


async def measure(dsn: str, runs: int, repeat: int, *, without_indexes: bool = False) -> list[dict[str, Any]]:
    """``without_indexes``: drop migration 0008's indexes first (what they are worth)."""
    admin = await asyncpg.connect(dsn)
    name = f"tracks_bench_runs_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"CREATE DATABASE {name}")
    db = dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        conn = await asyncpg.connect(db)
        try:
            await migrate(conn)
            t0 = time.perf_counter()
            await conn.execute(_SEED, runs, NOW)
            if without_indexes:
                for index in _INDEXES:
                    await conn.execute(f"DROP INDEX {index}")
            await conn.execute("VACUUM ANALYZE workflow_runs")
            print(f"inserted {runs:,} runs in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        finally:
            await conn.close()
        return await _time_filters(db, repeat)
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def _time_filters(db: str, repeat: int) -> list[dict[str, Any]]:
    pool = await create_pool(db, max_size=1)
    results = []
    try:
        for label, (kwargs, args) in FILTERS.items():
            plan = await _plan(pool, kwargs)
            took = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                found = await list_runs(pool, limit=50, **kwargs)
                took.append((time.perf_counter() - t0) * 1000)
            cli_ms = _cli(db, args)
            results.append(
                {
                    "filter": label,
                    "rows": len(found),
                    "median_ms": statistics.median(took),
                    "max_ms": max(took),
                    "cli_ms": cli_ms,
                    "plan": plan,
                }
            )
    finally:
        await pool.close()
    return results


async def _plan(pool: asyncpg.Pool, kwargs: dict[str, Any]) -> str:
    """The index the listing's plan reads (and whether it sorts), from EXPLAIN of the real query."""
    lines: list[str] = []

    class Explaining:
        async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
            lines.extend(r[0] for r in await pool.fetch(f"EXPLAIN {sql}", *args))
            return []

    await list_runs(Explaining(), limit=50, **kwargs)  # type: ignore[arg-type]
    scans = [ln.split(" using ")[1].split(" ")[0] for ln in lines if "Index Scan using " in ln]
    sort = " + Sort" if any("Sort" in ln for ln in lines) else ""
    return (", ".join(scans) or "Seq Scan") + sort


def _cli(db: str, args: list[str]) -> float:
    """Wall time of one ``tracks runs ls`` process (Python start-up included)."""
    env = {**os.environ, "TRACKS_DATABASE_URL": db, "TRACKS_NATS_URL": "nats://127.0.0.1:9"}  # never used
    t0 = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("tracks")), "runs", "ls", *args],
        env=env,
        check=True,
        capture_output=True,
    )
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tracks.bench.run_listing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="a server to use (default: start one)")
    parser.add_argument("--without-indexes", action="store_true", help="drop migration 0008's indexes")
    opts = parser.parse_args()
    with scratch_postgres("tracks-bench-runs-", opts.database_url) as dsn:
        results = asyncio.run(measure(dsn, opts.runs, opts.repeat, without_indexes=opts.without_indexes))
    print(f"{'filter':34} {'rows':>4} {'median':>9} {'max':>9} {'tracks runs ls':>15}  plan")
    for r in results:
        print(
            f"{r['filter']:34} {r['rows']:>4} {r['median_ms']:>7.2f}ms {r['max_ms']:>7.2f}ms "
            f"{r['cli_ms']:>13.0f}ms  {r['plan']}"
        )


if __name__ == "__main__":
    main()
