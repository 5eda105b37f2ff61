"""Cost as the ledger grows to a million runs, and what retention costs meanwhile: a measurement.

    python -m tracks.bench.growth [--runs 2000] [--prefill 1000000] [--steps 4] [--repeat 1]
                                  [--history-days 60] [--retention] [--older-than-days 30]
                                  [--batch 5000] [--budget 1 ...] [--settle-s 10.5] [--fast]

Starts a NATS server and a PostgreSQL of its own (the embedded settings; ``--fast``: fsync off)
in a temporary directory and one runtime of ``tracks.examples.receipts``. A first real wave of
``--runs`` runs is measured on empty tables; its rows are then the template that
:mod:`tracks.bench.growth.clone` copies under fresh random run IDs, spread over the last
``--history-days`` days, until the tables hold ``--prefill`` more runs, in ``--steps`` steps.
After each step (VACUUM ANALYZE and a CHECKPOINT, as autovacuum and time would do) real waves
are measured again (``--repeat`` at each size; one at 0 with ``--retention``). Per wave: runs in
the tables, runs/s, p50/p99 run latency, RSS of this process, PostgreSQL bytes per run, table and
index sizes, and what PostgreSQL did during the wave: WAL bytes per run, the share of full-page
images among WAL records, checkpoints, and the buffer hit ratio.

``--retention`` then measures, for each ``--budget`` in turn, a wave without a purge and
``--repeat`` pairs of a wave with :func:`actors.ledger.retention.purge` (``--older-than-days``,
``--batch``, that budget) running beside it from its start to its end and one without; and the
rows the purge deleted meanwhile. It needs ``--steps 1``: the purge walks ``processing_logs`` in
id order and stops at the first batch with nothing old (ids grow with time), so clones (older)
must not follow a real wave (newer). Everything is stopped and deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from actors import Runtime, TracksClient
from actors.ledger.retention import purge
from foundation.connections import connect_nats
from foundation.db import migrate
from foundation.settings import load_settings
from tracks.bench.footprint import TABLES, wave
from tracks.bench.growth.clone import Template, backdate, clone, template

__all__ = ["grow", "main"]

_DAY = 86400.0
_STATS_SQL = """
SELECT w.wal_records, w.wal_fpi, d.blks_hit, d.blks_read,
       {checkpoints} AS checkpoints
FROM pg_stat_wal w, pg_stat_database d {checkpointer} WHERE d.datname = current_database()
"""


async def _stats(conn: asyncpg.Connection) -> dict[str, int]:
    """Cumulative WAL, checkpoint and buffer counters (PostgreSQL 17 moved checkpoints)."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    if await conn.fetchval("SELECT to_regclass('pg_catalog.pg_stat_checkpointer') IS NOT NULL"):
        sql = _STATS_SQL.format(
            checkpoints="c.num_timed + c.num_requested", checkpointer=", pg_stat_checkpointer c"
        )
    else:
        sql = _STATS_SQL.format(
            checkpoints="b.checkpoints_timed + b.checkpoints_req", checkpointer=", pg_stat_bgwriter b"
        )
    row = await conn.fetchrow(sql)
    assert row is not None
    return {k: int(v) for k, v in dict(row).items()}


async def _measured(
    client: TracksClient,
    conn: asyncpg.Connection,
    js: Any,
    runs: int,
    tables: list[str],
    label: str,
    settle_s: float,
) -> tuple[dict[str, Any], list[str]]:
    """One real wave and what PostgreSQL did meanwhile; the wave's run IDs."""
    total = await conn.fetchval("SELECT count(*) FROM workflow_runs") + runs
    before = await _stats(conn)
    lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
    since = datetime.now(UTC)
    w = await wave(client, conn, js, runs, total)
    wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", lsn)
    await asyncio.sleep(settle_s)  # an idle backend flushes its counters within 10 s
    after = await _stats(conn)
    d = {k: after[k] - before[k] for k in after}
    cids = [
        r[0]
        for r in await conn.fetch("SELECT correlation_id FROM workflow_runs WHERE started_at >= $1", since)
    ]
    size = (
        "SELECT sum(pg_table_size(t::regclass)), sum(pg_indexes_size(t::regclass)) FROM unnest($1::text[]) t"
    )
    sizes = await conn.fetchrow(size, tables)
    assert sizes is not None
    w.pop("tracks_bytes_per_run")  # the stream holds the real runs only
    w.update(
        label=label,
        table_bytes=int(sizes[0]),
        index_bytes=int(sizes[1]),
        wal_bytes_per_run=float(wal) / runs,
        fpi_share=d["wal_fpi"] / max(1, d["wal_records"]),
        checkpoints=d["checkpoints"],
        hit_ratio=d["blks_hit"] / max(1, d["blks_hit"] + d["blks_read"]),
    )
    return w, cids


async def _purging(database_url: str, older_than_s: float, batch: int, budget: float) -> float:
    """The purge's seconds, unless the wave beside it ends first (then it is cancelled)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    assert pool is not None
    try:
        began = time.monotonic()
        await purge(pool, older_than_s=older_than_s, payloads=None, batch=batch, budget=budget)
        return time.monotonic() - began
    finally:
        await pool.close()


async def _deleted(conn: asyncpg.Connection, tables: list[str]) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    n = await conn.fetchval("SELECT sum(n_tup_del) FROM pg_stat_user_tables WHERE relname = ANY($1)", tables)
    return int(n or 0)


async def grow(
    nats_url: str,
    database_url: str,
    data_dir: Path,
    *,
    runs: int,
    prefill: int,
    steps: int,
    repeat: int = 1,
    history_days: float = 60.0,
    retention: bool = False,
    older_than_days: float = 30.0,
    batch: int = 5000,
    budgets: tuple[float, ...] = (1.0,),
    settle_s: float = 10.5,
) -> dict[str, Any]:
    """Waves at 0, then after each of ``steps`` prefill steps up to ``prefill`` cloned runs."""
    from tracks.examples.receipts import receipts

    settings = load_settings(nats_url=nats_url, database_url=database_url, data_dir=data_dir)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    result: dict[str, Any] = {"waves": [], "prefill_s": 0.0, "retention": None}
    async with Runtime(list(receipts), settings=settings):
        nc = await connect_nats(settings, nats_url, name="growth")
        js = nc.jetstream()
        client = TracksClient(js)
        conn = await asyncpg.connect(database_url)
        try:
            tables = list(TABLES)
            first, cids = await _measured(client, conn, nc.jetstream(), runs, tables, "real", settle_s)
            result["waves"].append(first)
            for _ in range(0 if retention else repeat - 1):  # real rows between template and clones
                result["waves"].append(
                    (await _measured(client, conn, js, runs, list(TABLES), "real", settle_s))[0]
                )
            tpl: Template = await template(conn, cids)
            tables = tpl.tables
            copies = math.ceil(prefill / len(cids)) if prefill > 0 else 0
            history_s = history_days * _DAY
            done = 0
            for step in range(1, steps + 1 if copies else 1):
                upto = math.ceil(copies * step / steps)
                began = time.monotonic()
                await clone(conn, tpl, done + 1, upto, copies=copies, history_s=history_s)
                await conn.execute("VACUUM (ANALYZE) " + ", ".join(f'"{t}"' for t in tables))
                await conn.execute("CHECKPOINT")
                if upto == copies:  # the template becomes the oldest history: ids grow with time
                    await backdate(conn, tpl, history_s)
                result["prefill_s"] += time.monotonic() - began
                done = upto
                for _ in range(repeat):
                    w, _ = await _measured(client, conn, js, runs, tables, f"+{done * len(cids)}", settle_s)
                    result["waves"].append(w)
            if retention:
                result["retention"] = [
                    await _retention(
                        client,
                        conn,
                        nc.jetstream(),
                        database_url,
                        runs,
                        tables,
                        older_than_days * _DAY,
                        batch,
                        budget,
                        settle_s,
                        repeat,
                    )
                    for budget in budgets
                ]
        finally:
            await conn.close()
            await nc.drain()
    return result


async def _retention(
    client: TracksClient,
    conn: asyncpg.Connection,
    js: Any,
    database_url: str,
    runs: int,
    tables: list[str],
    older_than_s: float,
    batch: int,
    budget: float,
    settle_s: float,
    pairs: int,
) -> dict[str, Any]:
    """A wave without the purge, then ``pairs`` times one with it running beside the wave (stopped
    when the wave ends, unless it ended first) and one without; rows the purge deleted."""
    waves = [(await _measured(client, conn, js, runs, tables, "no purge", settle_s))[0]]
    deleted, wave_s, purge_s = 0, 0.0, None
    for _ in range(pairs):
        before = await _deleted(conn, tables)
        task = asyncio.create_task(_purging(database_url, older_than_s, batch, budget))
        began = time.monotonic()
        waves.append((await _measured(client, conn, js, runs, tables, "purging", 0.0))[0])
        wave_s += time.monotonic() - began
        if task.done():
            purge_s = task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(settle_s)
        deleted += await _deleted(conn, tables) - before
        waves.append((await _measured(client, conn, js, runs, tables, "no purge", settle_s))[0])
    return {"waves": waves, "budget": budget, "deleted": deleted, "purge_s": purge_s, "wave_s": wave_s}


def _print_waves(waves: list[dict[str, Any]]) -> None:
    print(
        f"{'wave':>9} {'runs':>9} {'runs/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>6} {'PG B/run':>8} "
        f"{'tables MB':>9} {'idx MB':>7} {'WAL B/run':>9} {'FPI %':>5} {'ckpts':>5} {'hit %':>6}"
    )
    for w in waves:
        print(
            f"{w['label']:>9} {w['runs']:9} {w['runs_per_s']:7.0f} {w['p50_ms']:7.1f} {w['p99_ms']:7.1f} "
            f"{w['rss_mb']:6.0f} {w['pg_bytes_per_run']:8.0f} {w['table_bytes'] / 1e6:9.0f} "
            f"{w['index_bytes'] / 1e6:7.0f} {w['wal_bytes_per_run']:9.0f} {100 * w['fpi_share']:5.1f} "
            f"{w['checkpoints']:5} {100 * w['hit_ratio']:6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tracks.bench.growth", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=2000, help="real runs per wave (and in the template)")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="cloned runs added in all")
    parser.add_argument("--steps", type=int, default=4, help="prefill steps, a wave after each")
    parser.add_argument("--repeat", type=int, default=1, help="waves at each size")
    parser.add_argument("--history-days", type=float, default=60.0, help="the clones span this many days")
    parser.add_argument("--retention", action="store_true", help="then: waves without, with, without purge")
    parser.add_argument("--older-than-days", type=float, default=30.0, help="the purge's cutoff")
    parser.add_argument("--batch", type=int, default=5000, help="the purge's batch")
    parser.add_argument(
        "--budget",
        type=float,
        action="append",
        help="the purge's budget (default 1: unpaced); repeat for more",
    )
    parser.add_argument(
        "--settle-s", type=float, default=10.5, help="wait after each wave for the counters (WAL, buffers)"
    )
    parser.add_argument("--fast", action="store_true", help="fsync off (the tests' PostgreSQL)")
    opts = parser.parse_args()
    if opts.retention and opts.steps != 1:
        parser.error(
            "--retention needs --steps 1 (clones after a real wave would break the time order of ids)"
        )
    from tracks.embedded import NatsServer, PostgresServer

    root = Path(tempfile.mkdtemp(prefix="tracks-bench-growth-"))
    nats = NatsServer(root / "nats")
    postgres = PostgresServer(root / "postgres", fast=opts.fast)
    try:
        nats.start()
        postgres.start()
        os.environ.setdefault("TRACKS_LOG_LEVEL", "WARNING")
        r = asyncio.run(
            grow(
                nats.url,
                postgres.url,
                root,
                runs=opts.runs,
                prefill=opts.prefill,
                steps=opts.steps,
                repeat=opts.repeat,
                history_days=opts.history_days,
                retention=opts.retention,
                older_than_days=opts.older_than_days,
                batch=opts.batch,
                budgets=tuple(opts.budget or [1.0]),
                settle_s=opts.settle_s,
            )
        )
    finally:
        nats.stop()
        postgres.stop()
        postgres.delete_data()
        shutil.rmtree(root, ignore_errors=True)
    settings = "fsync off" if opts.fast else "embedded settings"
    print(f"growth: waves of {opts.runs} real runs of tracks.examples.receipts ({settings});")
    print(
        f"{opts.prefill} cloned runs over {opts.history_days:g} days in {opts.steps} steps, "
        f"{r['prefill_s']:.0f}s"
    )
    _print_waves(r["waves"])
    first, last = (
        statistics.mean(w["runs_per_s"] for w in r["waves"] if w["label"] == r["waves"][k]["label"])
        for k in (0, -1)
    )
    print(f"last size / first: {last / first:.1%} of the runs/s (means of the waves at each)")
    for ret in r["retention"] or []:
        print(f"retention: purge older than {opts.older_than_days:g} days beside every other wave")
        _print_waves(ret["waves"])
        with_ = statistics.mean(w["runs_per_s"] for w in ret["waves"][1::2])
        without = statistics.mean(w["runs_per_s"] for w in ret["waves"][::2])
        ended = "" if ret["purge_s"] is None else f", one ran out of work in {ret['purge_s']:.1f}s"
        print(
            f"  purge (budget {ret['budget']:g}, batch {opts.batch}): {ret['deleted']} rows deleted in "
            f"{ret['wave_s']:.1f}s of waves ({ret['deleted'] / ret['wave_s']:.0f}/s){ended}"
        )
        print(f"  runs/s with the purge: {with_ / without:.1%} of those without (means)")
