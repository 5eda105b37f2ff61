"""``tracks demo``: the receipts product end to end on its sample mailbox (embedded default).

Mail → receipts → drive → books, then duplicates, the month's report and a verified backup. The
runs are recorded in the default database, so ``tracks runs ls``, ``tracks console`` and the rest
show them afterwards. The demo's product state stays apart from real data: it forgets only what an
earlier demo recorded from the sample mailbox (``receipts_seen_messages.source``) and keeps its
files in its own folder (``<data dir>/receipts-demo``), so it runs again and again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import asyncpg
import click

import receipts
from actors import Runtime, TracksClient, Workflow
from actors.ledger.progress import proceed, progress
from foundation.db import init_connection, migrate
from foundation.jetstream.publisher import EventPublisher
from foundation.redact import mask_url
from receipts.settings import SAMPLE_MAIL
from tracks.cli._common import UserError, async_command, get_settings
from tracks.endpoints import with_endpoints

__all__ = ["demo"]

SAMPLE_SOURCE = f"folder:{SAMPLE_MAIL}"
"""How ``email_scan`` names the sample mailbox in ``receipts_seen_messages.source``."""
SAMPLE_MONTH = "2026-10"


@click.command()
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for each stage.")
@async_command
async def demo(timeout: float) -> None:
    """Run the receipts product on its sample mail: scan → process → file → book; dedup, report, backup."""
    settings = get_settings()
    click.echo("starting servers (embedded unless TRACKS_NATS_URL / TRACKS_DATABASE_URL are set) ...")
    settings, endpoints = await asyncio.to_thread(with_endpoints, settings)
    assert endpoints.database_url
    demo_url = endpoints.database_url
    await _forget_earlier_demo(demo_url)
    click.echo(f"  NATS        {mask_url(endpoints.nats_url)}")
    click.echo(f"  PostgreSQL  {mask_url(demo_url)}")
    home = (settings.data_dir / "receipts-demo").resolve()
    await asyncio.to_thread(shutil.rmtree, home, True)
    os.environ["TRACKS_RECEIPTS_HOME"], os.environ["TRACKS_RECEIPTS_MAIL_DIR"] = str(home), str(SAMPLE_MAIL)
    click.echo(f"  mail        {SAMPLE_MAIL} (the sample mailbox)\n")
    tracks = [t for wf in vars(receipts).values() if isinstance(wf, Workflow) for t in wf]
    async with Runtime(tracks, settings=settings.model_copy(update={"database_url": demo_url}),
                       name="tracks-demo") as runtime:  # fmt: skip
        assert runtime.nc is not None and runtime.pool is not None
        client = TracksClient(runtime.nc, payloads=runtime.payloads)
        pool, began = runtime.pool, time.monotonic()

        async def run(wf: Workflow, payload: dict[str, Any] | None = None) -> dict[str, Any]:
            result = await client.run(wf, payload or {}, timeout=timeout)
            return dict(result.get("summary", result))

        scan = await run(receipts.email_scan)
        click.echo(
            f"email_scan: {scan['seen']} messages, {len(scan['handed_over'])} with receipts handed to "
            f"receipt_process, {scan['without_receipts']} without"
        )
        await _settled(pool, len(scan["handed_over"]), timeout)
        await _show_runs(pool)
        await _release_reviews(pool, EventPublisher(runtime.nc.jetstream()), timeout)
        dedup = await run(receipts.duplicate_cleanup)
        click.echo(f"\nduplicate_cleanup: {dedup['exact']} exact, {dedup['near']} near; moved aside (kept):")
        for path in dedup["moved_to"]:
            click.echo(f"  {path}")
        report = await run(receipts.report_generate, {"month": SAMPLE_MONTH})
        click.echo(f"report_generate {report['month']}: {report['entries']} entries")
        for key in ("html", "csv", "totals"):
            click.echo(f"  {report[key]}")
        backup = await run(receipts.backup_create)
        click.echo(
            f"backup_create: {backup['path']} ({backup['bytes']} bytes, restored into a scratch "
            f"database to check it: {backup['tables_verified']} tables)"
        )
        click.echo(f"\nthe whole product ran in {time.monotonic() - began:.1f}s; the drive: {home / 'drive'}")
    click.echo(
        "next: `tracks actor run receipts` runs the product on your servers; `tracks run receipts:email_scan "
        "--wait` scans (TRACKS_RECEIPTS_MAIL_DIR or TRACKS_RECEIPTS_IMAP_HOST); stop the servers with "
        "`tracks dev down`"
    )


async def _forget_earlier_demo(url: str) -> None:
    """Migrate, then drop the product rows an earlier demo made from the sample mailbox (and only
    those): the sample messages are new again. The runtime's records of earlier demos stay.

    A database that holds real product data (mail from another source) is refused: the demo's
    jobs (dedup, report, backup) would work on it too."""
    conn = await asyncpg.connect(url)
    try:
        await init_connection(conn)
        await migrate(conn)
        other = await conn.fetchval(
            "SELECT source FROM receipts_seen_messages WHERE source <> $1 LIMIT 1", SAMPLE_SOURCE
        )
        if other is not None:
            raise UserError(
                f"the database {mask_url(url)} holds receipts read from {other}: the demo runs only "
                "where there is no real product data (set TRACKS_DATABASE_URL to another database)"
            )
        async with conn.transaction():
            mine = "SELECT message_id FROM receipts_seen_messages WHERE source = $1"
            receipts_of = f"SELECT receipt_id FROM receipts WHERE message_id IN ({mine})"
            await conn.execute(
                f"DELETE FROM receipts_duplicates WHERE receipt_id IN ({receipts_of}) "
                f"OR duplicate_of IN ({receipts_of})",
                SAMPLE_SOURCE,
            )
            await conn.execute(
                f"DELETE FROM bookkeeping_entries WHERE receipt_id IN ({receipts_of})", SAMPLE_SOURCE
            )
            await conn.execute(f"DELETE FROM receipts WHERE message_id IN ({mine})", SAMPLE_SOURCE)
            await conn.execute("DELETE FROM receipts_seen_messages WHERE source = $1", SAMPLE_SOURCE)
    except asyncpg.PostgresError as exc:
        raise UserError(f"cannot prepare the demo's database: {exc}") from None
    finally:
        await conn.close()


async def _settled(pool: asyncpg.Pool, runs: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await pool.fetchrow(
            "SELECT count(*) AS started, count(*) FILTER (WHERE status = 'running') AS running "
            "FROM workflow_runs WHERE workflow = 'receipt_process' AND correlation_id IN "
            "(SELECT run_id FROM receipts_seen_messages WHERE source = $1)",
            SAMPLE_SOURCE,
        )
        if row is not None and row["started"] >= runs and row["running"] == 0:
            return
        await asyncio.sleep(0.1)
    raise UserError(f"the receipt_process runs did not finish within {timeout:.0f}s; see `tracks runs ls`")


async def _show_runs(pool: asyncpg.Pool) -> None:
    click.echo("receipt_process (extract → file → book), one run per message:")
    for run in await pool.fetch(
        """SELECT w.correlation_id, w.status, w.error, m.subject FROM workflow_runs w
           JOIN receipts_seen_messages m ON m.run_id = w.correlation_id
           WHERE w.workflow = 'receipt_process' AND m.source = $1 ORDER BY m.message_id""",
        SAMPLE_SOURCE,
    ):
        rows = await pool.fetch(
            "SELECT * FROM receipts WHERE message_id = (SELECT message_id FROM receipts_seen_messages "
            "WHERE run_id = $1)",
            run["correlation_id"],
        )
        if run["status"] != "completed":
            click.echo(
                f"  {run['subject'][:34]:34} {run['status']}: {run['error']} (dead-lettered: `tracks dlq ls`)"
            )
        for r in rows:
            what = Path(r["drive_path"]).name if r["drive_path"] else f"{r['status']}: {r['review_reason']}"
            click.echo(f"  {run['subject'][:34]:34} {r['vendor'] or '?':16} {what}")


async def _release_reviews(pool: asyncpg.Pool, publisher: EventPublisher, timeout: float) -> None:
    waiting = await pool.fetch(
        "SELECT receipt_id FROM receipts WHERE status = 'needs_review' AND message_id IN "
        "(SELECT message_id FROM receipts_seen_messages WHERE source = $1) ORDER BY receipt_id",
        SAMPLE_SOURCE,
    )
    for row in waiting:
        cid = f"review-{row['receipt_id']}"
        deadline = time.monotonic() + timeout
        while not (state := await progress(pool, cid)).requires_manual_trigger:
            if time.monotonic() > deadline:
                raise UserError(f"{cid} never reached its manual gate; see `tracks status {cid}`")
            await asyncio.sleep(0.1)
        click.echo(
            f"\nreceipt_review {cid} waits at the manual gate '{state.current_phase}' "
            f"(`tracks status {cid}`); the demo releases it as a person would with `tracks proceed {cid}`"
        )
        await proceed(pool, publisher, cid)
        while not await pool.fetchval(
            "SELECT count(*) FROM bookkeeping_entries WHERE receipt_id = $1", row[0]
        ):
            if time.monotonic() > deadline:
                raise UserError(f"{cid} was released but did not book; see `tracks status {cid}`")
            await asyncio.sleep(0.1)
        path = await pool.fetchval("SELECT drive_path FROM receipts WHERE receipt_id = $1", row[0])
        click.echo(f"  approved, filed and booked: {Path(path).name}")
