"""The scheduled jobs: ``file_organize`` (daily), ``duplicate_cleanup`` (weekly),
``report_generate`` (last day of the month), ``backup_create`` (weekly).

Each is a one-track workflow whose track has the job type's name, so the standard schedules
(``tracks.<job_type>.run``) and ``tracks run receipts:<job_type>`` both start it.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from actors import PermanentError, TrackContext, Workflow, current_runtime
from receipts.backup import BackupError, create_backup
from receipts.books import book, file_receipt
from receipts.context import product
from receipts.drive import Drive
from receipts.models import Done, ReportRequest
from receipts.report import write_report

__all__ = ["backup_create", "duplicate_cleanup", "file_organize", "find_duplicates", "report_generate"]

file_organize = Workflow("file_organize", timeout_s=600)
duplicate_cleanup = Workflow("duplicate_cleanup", timeout_s=600)
report_generate = Workflow("report_generate", timeout_s=600)
backup_create = Workflow("backup_create", timeout_s=1800)


@file_organize.track("file_organize")
async def organize(ctx: TrackContext, _: dict[str, object]) -> Done:
    """File (and book) every accepted receipt not in the drive yet: what a crash or a later
    approval left behind."""
    p = product()
    pending = await p.pool.fetch(
        """SELECT receipt_id FROM receipts
           WHERE status = 'accepted' OR (status = 'filed' AND drive_path IS NULL) ORDER BY created_at"""
    )
    filed = []
    for row in pending:
        if await file_receipt(p.pool, p.drive, row["receipt_id"]) is not None:
            await book(p.pool, p.freee, row["receipt_id"])
            filed.append(row["receipt_id"])
    in_drive = await p.pool.fetchval("SELECT count(*) FROM receipts WHERE status = 'filed'")
    return Done(summary={"filed": len(filed), "in_drive": int(in_drive), "drive": str(p.settings.drive)})


@duplicate_cleanup.track("duplicate_cleanup")
async def dedup(ctx: TrackContext, _: dict[str, object]) -> Done:
    p = product()
    found = await find_duplicates(p.pool)
    moved = [await _move_aside(p.pool, p.drive, dup, original, match) for dup, original, match in found]
    return Done(
        summary={
            "exact": sum(1 for *_, m in found if m == "exact"),
            "near": sum(1 for *_, m in found if m == "near"),
            "moved_to": moved,
        }
    )


async def find_duplicates(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    """(duplicate, original, ``exact``|``near``) among filed receipts: the same content hash, or
    the same (date, amount, vendor); the earliest receipt is the original."""
    rows = await pool.fetch(
        """SELECT receipt_id, sha256, issued_on, amount, lower(vendor) AS vendor FROM receipts
           WHERE status = 'filed' ORDER BY created_at, receipt_id"""
    )
    by_hash: dict[str, str] = {}
    by_fields: dict[tuple[object, ...], str] = {}
    found = []
    for r in rows:
        fields = (r["issued_on"], r["amount"], r["vendor"])
        if (original := by_hash.get(r["sha256"])) is not None:
            found.append((r["receipt_id"], original, "exact"))
        elif (original := by_fields.get(fields)) is not None:
            found.append((r["receipt_id"], original, "near"))
        else:
            by_hash[r["sha256"]] = r["receipt_id"]
            by_fields[fields] = r["receipt_id"]
    return found


async def _move_aside(pool: asyncpg.Pool, drive: Drive, dup: str, original: str, match: str) -> str:
    path = await pool.fetchval("SELECT drive_path FROM receipts WHERE receipt_id = $1", dup)
    moved = drive.move_aside(path, "_duplicates") if path and drive.exists(path) else None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO receipts_duplicates (receipt_id, duplicate_of, match, moved_from, moved_to)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (receipt_id) DO NOTHING""",
            dup,
            original,
            match,
            path,
            moved,
        )
        await conn.execute(
            "UPDATE receipts SET status = 'duplicate', drive_path = coalesce($2, drive_path), "
            "updated_at = now() WHERE receipt_id = $1",
            dup,
            moved,
        )
        await conn.execute("UPDATE bookkeeping_entries SET status = 'void' WHERE receipt_id = $1", dup)
    return moved or str(path)


@report_generate.track("report_generate")
async def report(ctx: TrackContext, request: ReportRequest) -> Done:
    p = product()
    month = request.month or f"{dt.datetime.now(dt.UTC):%Y-%m}"
    made = await write_report(p.pool, month, p.settings.reports / month)
    return Done(
        summary={
            "month": month,
            "entries": made.entries,
            "needs_review": made.review,
            "csv": str(made.csv_path),
            "totals": str(made.totals_path),
            "html": str(made.html_path),
        }
    )


@backup_create.track("backup_create")
async def backup(ctx: TrackContext, _: dict[str, object]) -> Done:
    p = product()
    url = current_runtime().settings.database_url
    assert url is not None
    try:
        made = await create_backup(
            p.pool, url, p.settings.backups, keep=p.settings.backup_keep, bin_dir=p.settings.pg_bin_dir
        )
    except BackupError as exc:
        raise PermanentError(str(exc)) from None
    return Done(
        summary={
            "path": str(made.path),
            "bytes": made.size_bytes,
            "tables_verified": made.tables,
            "removed": made.removed,
        }
    )
