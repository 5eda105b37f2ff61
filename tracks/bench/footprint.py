"""What one run of the reference workflow leaves behind: a measurement, not a test.

    python -m tracks.bench.footprint [--runs 2000] [--record-payloads full|once|none]

Starts a NATS server and a PostgreSQL of its own in a temporary directory, runs
``tracks.examples.receipts`` (4 steps: gmail → drive → files → freee) in one runtime for
``--runs`` runs, waits until every run finished, then prints the bytes per run: the ``TRACKS``
stream (``state.bytes``), ``DLQ``, and each PostgreSQL table (``pg_total_relation_size``, indexes
and TOAST included; after VACUUM so dead tuples are not counted); then where those bytes are:
each table's heap, TOAST and every index, each column's average stored width, and the size of
the payloads themselves. The README's sizing table comes from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]

from actors import Runtime, TracksClient
from foundation.connections import connect_nats
from foundation.db import migrate
from foundation.settings import load_settings
from subjects import DLQ_STREAM, STREAM

__all__ = ["TABLES", "measure", "wave"]

TABLES = ("processing_logs", "track_steps", "workflow_runs", "workflow_definitions")


_FINISHED_SQL = """
SELECT count(*) FROM workflow_runs
WHERE workflow = 'receipts' AND started_at >= $1 AND finished_at IS NOT NULL
"""
_LATENCY_SQL = """
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
FROM workflow_runs WHERE workflow = 'receipts' AND started_at >= $1
"""


async def wave(
    client: TracksClient, conn: asyncpg.Connection, js: Any, runs: int, total: int
) -> dict[str, Any]:
    """``runs`` more runs, started as fast as they can be; what the wave cost and left."""
    from tracks.examples.receipts import receipts

    since = datetime.now(UTC)
    began = time.monotonic()
    for n in range(runs):
        await client.start(receipts, {"mailbox": f"box{n}@example.com", "count": 2})
    while await conn.fetchval(_FINISHED_SQL, since) < runs:
        if time.monotonic() - began > 60 + runs / 10:
            raise TimeoutError("runs did not finish in time")
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - began
    p50, p99 = await conn.fetchval(_LATENCY_SQL, since)
    pg = sum([await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t) for t in TABLES])
    return {
        "runs": total,
        "runs_per_s": runs / elapsed,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "rss_mb": psutil.Process().memory_info().rss / 1e6,
        "pg_bytes_per_run": pg / total,
        "tracks_bytes_per_run": (await js.stream_info(STREAM)).state.bytes / total,
    }


_RELATIONS_SQL = """
SELECT t.relname AS table_name, 'heap' AS kind, t.relname AS name,
       pg_table_size(t.oid) - coalesce(pg_total_relation_size(nullif(t.reltoastrelid, 0)), 0) AS bytes
FROM pg_class t WHERE t.oid = ANY ($1::regclass[])
UNION ALL
SELECT t.relname, 'toast', 'TOAST', pg_total_relation_size(t.reltoastrelid)
FROM pg_class t WHERE t.oid = ANY ($1::regclass[]) AND t.reltoastrelid <> 0
UNION ALL
SELECT t.relname, 'index', i.relname, pg_relation_size(i.oid)
FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
WHERE t.oid = ANY ($1::regclass[])
ORDER BY 1, 2, 3
"""


_PAYLOADS_SQL = """
SELECT (SELECT sum(octet_length(output::text)) FROM track_steps) AS outputs_text,
       (SELECT sum(pg_column_size(output)) FROM track_steps) AS outputs_stored,
       (SELECT sum(octet_length(input::text)) FROM workflow_runs) AS input_text,
       (SELECT sum(pg_column_size(input)) FROM workflow_runs) AS input_stored
"""


async def _relations(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Each table's heap (with its free-space and visibility maps), TOAST, and every index."""
    return [dict(r) for r in await conn.fetch(_RELATIONS_SQL, list(TABLES))]


async def _columns(conn: asyncpg.Connection, table: str) -> dict[str, float]:
    """Average stored width of each column (``pg_column_size``: compressed or TOASTed as stored)."""
    names = await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        table,
    )
    widths = ", ".join(f'coalesce(avg(pg_column_size("{r["attname"]}")), 0)' for r in names)
    row = await conn.fetchrow(f"SELECT avg(pg_column_size(t.*)), {widths} FROM {table} t")
    values = [float(v or 0) for v in (row.values() if row is not None else [])]
    return {"(row)": values[0], **{r["attname"]: v for r, v in zip(names, values[1:], strict=True)}}


async def measure(
    nats_url: str, database_url: str, runs: int, data_dir: Path, waves: int = 1, vacuum: bool = False
) -> dict[str, Any]:
    from tracks.examples.receipts import receipts

    settings = load_settings(nats_url=nats_url, database_url=database_url, data_dir=data_dir)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    async with Runtime(list(receipts), settings=settings):
        nc = await connect_nats(settings, nats_url, name="footprint")
        js = nc.jetstream()
        client = TracksClient(js)
        began = time.monotonic()
        conn = await asyncpg.connect(database_url)
        try:
            per_wave = []
            for w in range(waves):
                per_wave.append(await wave(client, conn, js, runs, runs * (w + 1)))
                if vacuum:  # as autovacuum would: the free space it records is reused by the next wave
                    await conn.execute("VACUUM " + ", ".join(TABLES))
            elapsed = time.monotonic() - began
            runs *= waves
            await conn.execute("VACUUM (ANALYZE) " + ", ".join(TABLES))
            tables = {
                t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t) for t in TABLES
            }
            rows = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
            indexes = {t: await conn.fetchval("SELECT pg_indexes_size($1::regclass)", t) for t in TABLES}
            relations = await _relations(conn)
            payloads = await conn.fetchrow(_PAYLOADS_SQL)
            columns = {t: await _columns(conn, t) for t in TABLES}
            by_event = await conn.fetch(
                "SELECT event_type, count(*) AS n, avg(pg_column_size(details))::int AS details,"
                " avg(pg_column_size(p.*))::int AS row FROM processing_logs p GROUP BY 1 ORDER BY 1"
            )
        finally:
            await conn.close()
        streams = {}
        for name in (STREAM, DLQ_STREAM):
            state = (await js.stream_info(name)).state
            streams[name] = {"bytes": state.bytes, "messages": state.messages}
        await nc.drain()
    return {
        "runs": runs,
        "elapsed_s": elapsed,
        "tables": tables,
        "indexes": indexes,
        "rows": rows,
        "streams": streams,
        "log_rows": [dict(r) for r in by_event],
        "relations": relations,
        "payloads": dict(payloads) if payloads is not None else {},
        "columns": columns,
        "waves": per_wave,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tracks.bench.footprint", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=2000, help="runs (per wave with --waves)")
    parser.add_argument(
        "--waves", type=int, default=1, help="waves of --runs without clean-up; each wave's figures"
    )
    parser.add_argument(
        "--vacuum", action="store_true", help="VACUUM after each wave (steady state: space reused)"
    )
    parser.add_argument(
        "--record-payloads", choices=["full", "once", "none"], default=None, help="TRACKS_RECORD_PAYLOADS"
    )
    opts = parser.parse_args()
    from tracks.embedded import NatsServer, PostgresServer

    root = Path(tempfile.mkdtemp(prefix="tracks-bench-footprint-"))
    nats = NatsServer(root / "nats")
    postgres = PostgresServer(root / "postgres", fast=True)
    try:
        nats.start()
        postgres.start()
        os.environ.setdefault("TRACKS_LOG_LEVEL", "WARNING")
        if opts.record_payloads:
            os.environ["TRACKS_RECORD_PAYLOADS"] = opts.record_payloads
        r = asyncio.run(measure(nats.url, postgres.url, opts.runs, root, opts.waves, opts.vacuum))
    finally:
        nats.stop()
        postgres.stop()
        postgres.delete_data()
        shutil.rmtree(root, ignore_errors=True)
    n = r["runs"]
    if opts.waves > 1:
        print(
            f"{'runs':>9} {'runs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7} "
            f"{'PG B/run':>9} {'TRACKS B/run':>13}"
        )
        for w in r["waves"]:
            print(
                f"{w['runs']:9} {w['runs_per_s']:8.0f} {w['p50_ms']:8.1f} {w['p99_ms']:8.1f} "
                f"{w['rss_mb']:7.0f} {w['pg_bytes_per_run']:9.0f} {w['tracks_bytes_per_run']:13.0f}"
            )
    mode = os.environ.get("TRACKS_RECORD_PAYLOADS", "once")
    print(f"{n} runs of tracks.examples.receipts (4 steps, record payloads: {mode}) in {r['elapsed_s']:.1f}s")
    for name, s in r["streams"].items():
        print(f"  stream {name:16} {s['bytes'] / n:8.0f} B/run  ({s['messages'] / n:.1f} messages/run)")
    total = 0
    for table, size in r["tables"].items():
        total += size
        print(
            f"  table {table:17} {size / n:8.0f} B/run  ({r['rows'][table] / n:.1f} rows/run, "
            f"indexes {r['indexes'][table] / n:.0f} B/run)"
        )
    for row in r["log_rows"]:
        print(
            f"    processing_logs {row['event_type']:12} {row['n'] / n:4.1f}/run  "
            f"row {row['row']} B, details {row['details']} B"
        )
    print(f"  PostgreSQL total         {total / n:8.0f} B/run")
    p = r["payloads"]
    if p.get("outputs_text"):
        print(
            f"  payloads: outputs {p['outputs_text'] / n:.0f} B/run as JSON text, "
            f"{p['outputs_stored'] / n:.0f} stored; the run's input {p['input_text'] / n:.0f} / "
            f"{p['input_stored'] / n:.0f}"
        )
    print("  by relation (heap: with its free-space and visibility maps):")
    for rel in r["relations"]:
        label = rel["name"] if rel["kind"] == "index" else rel["kind"]
        print(f"    {rel['table_name']:17} {rel['kind']:5} {label:40} {rel['bytes'] / n:8.0f} B/run")
    print("  average stored width per row (bytes, pg_column_size):")
    for table, widths in r["columns"].items():
        cols = ", ".join(f"{c} {w:.0f}" for c, w in widths.items() if w)
        print(f"    {table}: {cols}")


if __name__ == "__main__":
    main()
