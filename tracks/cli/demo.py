"""``tracks demo``: the reference workflow end to end on the embedded default."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import click

from actors import Runtime, TracksClient
from actors.ledger.execution_chain import execution_chain
from foundation.db import init_connection, migrate
from foundation.redact import mask_url
from tracks.cli._common import UserError, async_command, get_settings
from tracks.endpoints import with_endpoints
from tracks.examples.receipts import receipts

__all__ = ["demo"]


@click.command()
@click.option("--runs", default=25, show_default=True, help="Receipt runs to push through the workflow.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for every run to finish.")
@async_command
async def demo(runs: int, timeout: float) -> None:
    """Start the servers if needed, migrate, run gmail → drive → file_management → freee, show a chain."""
    settings = get_settings()
    click.echo("starting servers (embedded unless TRACKS_NATS_URL / TRACKS_DATABASE_URL are set) ...")
    settings, endpoints = await asyncio.to_thread(with_endpoints, settings)
    click.echo(f"  NATS        {mask_url(endpoints.nats_url)}")
    click.echo(f"  PostgreSQL  {mask_url(endpoints.database_url)}")
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        await init_connection(conn)
        applied = await migrate(conn)
    finally:
        await conn.close()
    click.echo(f"schema: {len(applied)} migration(s) applied" if applied else "schema: up to date")

    async with Runtime(list(receipts), settings=settings, name="tracks-demo") as runtime:
        assert runtime.nc is not None and runtime.pool is not None
        client = TracksClient(runtime.nc.jetstream(), payloads=runtime.payloads)
        began = time.monotonic()
        cids = [
            (await client.trigger("gmail", {"mailbox": f"user{i}@example.com", "count": 1 + i % 4}))[0]
            for i in range(runs)
        ]
        click.echo(f"triggered {runs} runs; waiting for the bookkeeping step of each ...")
        done = await _wait_for(runtime.pool, cids, timeout)
        elapsed = time.monotonic() - began
        if done < runs:
            raise UserError(
                f"only {done}/{runs} runs finished within {timeout:.0f}s; see `tracks chain <cid>`"
            )
        click.echo(f"all {runs} runs completed in {elapsed:.2f}s\n")
        booked = await runtime.pool.fetchrow(
            "SELECT output FROM track_steps WHERE correlation_id = $1 AND track_id = 'freee'", cids[0]
        )
        click.echo(f"run {cids[0]}:")
        for e in await execution_chain(runtime.pool, cids[0]):
            took = f"{e.duration_ms:7.2f}ms" if e.duration_ms is not None else " " * 9
            click.echo(f"  {e.occurred_at:%H:%M:%S.%f}  {e.track:16} {e.event_type:10} {took}")
        assert booked is not None
        click.echo(f"  booked: {booked['output']['entries']} total ¥{booked['output']['total_jpy']}\n")
    click.echo(
        "next: `tracks chain <cid>`, `tracks actor run tracks.examples.receipts`, "
        "`tracks trigger gmail --payload '{\"count\": 2}'`; stop the servers with `tracks dev down`"
    )


async def _wait_for(pool: asyncpg.Pool, cids: list[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = int(
            await pool.fetchval(
                "SELECT count(*) FROM track_steps WHERE track_id = 'freee' AND status = 'completed' "
                "AND correlation_id = ANY($1)",
                cids,
            )
        )
        if done == len(cids):
            break
        await asyncio.sleep(0.1)
    return done
