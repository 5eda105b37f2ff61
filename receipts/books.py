"""Filing and bookkeeping of accepted receipts: the steps both ``receipt_process`` and
``receipt_review`` end with, and ``file_organize`` catches up on."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from actors import PermanentError
from receipts.drive import Drive, file_name
from receipts.freee import FreeeClient, FreeeError, deal_body
from receipts.settings import FreeeSettings

__all__ = ["book", "file_receipt"]


async def file_receipt(pool: asyncpg.Pool, drive: Drive, receipt_id: str) -> str | None:
    """Put an accepted receipt's original in the drive under its name; its path (``None`` if it
    is not accepted). Filed once: a retry finds the path recorded."""
    row = await pool.fetchrow("SELECT * FROM receipts WHERE receipt_id = $1", receipt_id)
    if row is None or row["status"] not in ("accepted", "filed"):
        return None
    if row["status"] == "filed" and row["drive_path"] and drive.exists(row["drive_path"]):
        return str(row["drive_path"])
    ext = Path(row["filename"]).suffix.lstrip(".") or {"text": "txt"}.get(row["kind"], row["kind"])
    name = file_name(row["issued_on"], row["vendor"], row["amount"], row["currency"], ext)
    stored = drive.put(Path(row["spool_path"]), name)
    await pool.execute(
        "UPDATE receipts SET status = 'filed', drive_path = $2, updated_at = now() WHERE receipt_id = $1",
        receipt_id,
        stored,
    )
    return stored


async def book(pool: asyncpg.Pool, freee: FreeeSettings, receipt_id: str) -> str | None:
    """Record the receipt's bookkeeping entry and, when freee is configured, post it once.

    Once: the entry notes that a POST was sent before sending it; a try after one whose outcome
    is unknown (a lost reply, a crash before the deal ID was stored) finds the deal by its
    ``ref_number`` instead of posting it again.

    Returns the entry's state (``recorded``/``posted``), ``None`` for a receipt not accepted."""
    row = await pool.fetchrow(
        "SELECT * FROM receipts WHERE receipt_id = $1 AND status IN ('accepted', 'filed')", receipt_id
    )
    if row is None:
        return None
    key = f"receipt:{receipt_id}"
    await pool.execute(
        """INSERT INTO bookkeeping_entries
               (receipt_id, idempotency_key, issue_date, vendor, category, amount, tax, currency)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (receipt_id) DO NOTHING""",
        receipt_id,
        key,
        row["issued_on"],
        row["vendor"],
        row["category"],
        row["amount"],
        row["tax"],
        row["currency"],
    )
    entry = await pool.fetchrow("SELECT * FROM bookkeeping_entries WHERE receipt_id = $1", receipt_id)
    assert entry is not None
    if entry["freee_deal_id"] is not None or not freee.enabled:
        return str(entry["status"])
    assert freee.company_id is not None
    client = FreeeClient(freee)
    try:
        deal_id = None
        if entry["post_sent_at"] is not None:  # an earlier POST's outcome is unknown: ask freee first
            deal_id = await client.find_deal(freee.company_id, entry["issue_date"], key)
        if deal_id is None:
            await pool.execute(
                "UPDATE bookkeeping_entries SET post_sent_at = now() WHERE receipt_id = $1", receipt_id
            )
            body = deal_body(freee.company_id, entry["issue_date"], entry["category"], entry["amount"], key)
            deal_id = await client.post_deal(body)
    except FreeeError as exc:
        if 400 <= exc.status < 500 and exc.status != 429:
            raise PermanentError(str(exc)) from None
        raise  # 429 and 5xx: retried by the runtime
    await pool.execute(
        """UPDATE bookkeeping_entries SET status = 'posted', freee_deal_id = $2, posted_at = now()
           WHERE receipt_id = $1 AND freee_deal_id IS NULL""",
        receipt_id,
        deal_id,
    )
    return "posted"
