"""From mail to books: ``email_scan`` → ``receipt_process`` (→ ``receipt_review`` for a person).

``email_scan`` reads the mail source, records every message by Message-ID in
``receipts_seen_messages`` and starts one ``receipt_process`` run per message with receipt-like
attachments. The run's correlation ID comes from the Message-ID, so a re-scan (or a scan retried
after a crash between starting a run and recording it) starts nothing new.

``receipt_process`` extracts each attachment (``receipt_process``), files the clear ones in the
drive (``receipt_file``) and books them (``receipt_book``). A receipt below the confidence
threshold is not filed: it gets a ``receipt_review`` run that waits at a manual gate until a
person checks it (``tracks status review-…``) and releases it (``tracks proceed review-…``).
A malformed attachment fails the step with a PermanentError naming the file (dead-lettered).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from pathlib import Path

import asyncpg

from actors import PermanentError, Phase, TrackContext, TrackOptions, Workflow
from actors.flow import Limit
from receipts.books import book, file_receipt
from receipts.context import product
from receipts.extract import Unreadable, extract
from receipts.mail import attachments_of, message_key, parse, source_from
from receipts.models import Extracted, Filed, MessageRef, Receipt, ScanRequest, ScanResult

__all__ = ["email_scan", "receipt_process", "receipt_review", "review_id", "run_id"]

FREEE = Limit("freee", rate="3/s")
"""freee's API allows a few calls a second: every track that books draws from this one bucket,
across all replicas (README "Flow control")."""

email_scan = Workflow("email_scan", timeout_s=600)
receipt_process = Workflow("receipt_process", timeout_s=600)
receipt_review = Workflow(
    "receipt_review",
    phases=[Phase("hold", ("receipt_hold",)), Phase("approve", ("receipt_approve",), manual=True)],
)


def run_id(key: str) -> str:
    """The ``receipt_process`` run of a message's ``key`` (kept in ``receipts_seen_messages``)."""
    return f"rcpt-{key}"


def review_id(receipt_id: str) -> str:
    return f"review-{receipt_id}"


@email_scan.track("email_scan", options=TrackOptions(max_running=1))  # one scan of the mailbox at a time
async def scan(ctx: TrackContext, request: ScanRequest) -> ScanResult:
    p = product()
    source = source_from(p.settings)
    last = await p.pool.fetchval(
        "SELECT max(seen_at) FROM receipts_seen_messages WHERE source = $1", source.name
    )
    since = last - dt.timedelta(hours=1) if last is not None and source.name.startswith("imap:") else None
    seen = new = without = 0
    handed: list[str] = []
    for raw in await asyncio.to_thread(lambda: list(source.messages(since))):  # IMAP blocks: not here
        seen += 1
        message = parse(raw)
        message_id, digest = message_key(message, raw)
        found = attachments_of(message)
        known = await p.pool.fetchrow(
            "SELECT handed_off_at FROM receipts_seen_messages WHERE message_id = $1", message_id
        )
        if known is None:
            new += 1
            # the run's ID is chosen once, when the message is first seen, and kept: a re-scan or a
            # retried scan starts the same run (nothing new); another database's runs never clash
            await p.pool.execute(
                """INSERT INTO receipts_seen_messages (message_id, source, subject, attachments, run_id)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING""",
                message_id,
                source.name,
                str(message.get("Subject") or "")[:300],
                len(found),
                run_id(f"{digest[:16]}{secrets.token_hex(4)}"),
            )
        elif known["handed_off_at"] is not None:
            continue  # seen and handed over by an earlier scan
        cid = await p.pool.fetchval(
            "SELECT run_id FROM receipts_seen_messages WHERE message_id = $1", message_id
        )
        key = cid.removeprefix("rcpt-")
        if not found:
            without += 1
            continue
        spool = await asyncio.to_thread(_spool, p.settings.spool / f"{key}.eml", raw)
        ref = MessageRef(
            message_id=message_id, key=key, spool_path=str(spool), subject=message.get("Subject")
        )
        await p.client.start(receipt_process, ref.model_dump(), correlation_id=cid)
        await p.pool.execute(
            "UPDATE receipts_seen_messages SET handed_off_at = now() WHERE message_id = $1", message_id
        )
        handed.append(cid)
        if len(handed) >= request.limit:
            break
    return ScanResult(source=source.name, seen=seen, new=new, handed_over=handed, without_receipts=without)


@receipt_process.track("receipt_process")
async def process(ctx: TrackContext, ref: MessageRef) -> Extracted:
    p = product()
    try:
        raw = await asyncio.to_thread(Path(ref.spool_path).read_bytes)
    except FileNotFoundError:
        raise PermanentError(f"message {ref.message_id}: its spooled copy {ref.spool_path} is gone") from None
    found = attachments_of(parse(raw))
    receipts: list[Receipt] = []
    for att in found:
        receipt_id = f"{ref.key}-{att.index}"
        try:
            receipt = extract(
                receipt_id, att.filename, att.kind, att.data, review_below=p.settings.review_below
            )
        except Unreadable as exc:
            raise PermanentError(f"malformed attachment in message {ref.message_id}: {exc}") from None
        receipts.append(receipt)
    review = []
    for receipt in receipts:
        data = next(a.data for a in found if f"{ref.key}-{a.index}" == receipt.receipt_id)
        path = await asyncio.to_thread(
            _spool, p.settings.spool / f"{receipt.sha256}{_suffix(receipt.filename)}", data
        )
        status = "needs_review" if receipt.review_reason else "accepted"
        await _save(p.pool, ref.message_id, receipt, str(path), status)
        if receipt.review_reason:
            review.append(receipt.receipt_id)
            await p.client.start(
                receipt_review, receipt.model_dump(mode="json"), correlation_id=review_id(receipt.receipt_id)
            )
    return Extracted(message_id=ref.message_id, receipts=receipts, review=review)


@receipt_process.track("receipt_file", after=["receipt_process"])
async def file_step(ctx: TrackContext, extracted: Extracted) -> Filed:
    p = product()
    filed = {}
    for r in extracted.receipts:
        if (where := await file_receipt(p.pool, p.drive, r.receipt_id)) is not None:
            filed[r.receipt_id] = where
    return Filed(filed=filed)


@receipt_process.track("receipt_book", after=["receipt_file"], options=TrackOptions(limits=[FREEE]))
async def book_step(ctx: TrackContext, filed: Filed) -> dict[str, str]:
    p = product()
    return {rid: await book(p.pool, p.freee, rid) or "not accepted" for rid in filed.filed}


@receipt_review.track("receipt_hold")
async def hold(ctx: TrackContext, receipt: Receipt) -> Receipt:
    """The receipt as extracted, for the person who checks it (``tracks status``, the run's input)."""
    return receipt


@receipt_review.track("receipt_approve", after=["receipt_hold"], options=TrackOptions(limits=[FREEE]))
async def approve(ctx: TrackContext, receipt: Receipt) -> dict[str, str | None]:
    """A person released the gate: accept the receipt (fields as corrected in the table, if they
    were), file it and book it. A receipt still missing date, vendor or amount stays in review."""
    p = product()
    row = await p.pool.fetchrow("SELECT * FROM receipts WHERE receipt_id = $1", receipt.receipt_id)
    if row is None:
        raise PermanentError(f"receipt {receipt.receipt_id} is not in the receipts table")
    missing = [f for f in ("issued_on", "vendor", "amount") if row[f] is None]
    if missing:
        raise PermanentError(
            f"receipt {receipt.receipt_id} still lacks {', '.join(missing)}: "
            "set them in the receipts table, then `tracks resume` this run"
        )
    await p.pool.execute(
        """UPDATE receipts SET status = 'accepted', currency = coalesce(currency, 'JPY'),
               review_reason = NULL, updated_at = now()
           WHERE receipt_id = $1 AND status = 'needs_review'""",
        receipt.receipt_id,
    )
    where = await file_receipt(p.pool, p.drive, receipt.receipt_id)
    return {"filed": where, "booked": await book(p.pool, p.freee, receipt.receipt_id)}


def _spool(path: Path, data: bytes) -> Path:
    """Keep ``data`` at ``path`` (written once: the name is derived from the content or message)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(data)
        tmp.rename(path)
    return path


def _suffix(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot >= 0 and len(filename) - dot <= 6 else ""


async def _save(pool: asyncpg.Pool, message_id: str, r: Receipt, spool: str, status: str) -> None:
    await pool.execute(
        """INSERT INTO receipts (receipt_id, message_id, filename, sha256, spool_path, kind, issued_on,
                                 vendor, amount, tax, currency, category, confidence, status, review_reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (receipt_id) DO NOTHING""",
        r.receipt_id,
        message_id,
        r.filename,
        r.sha256,
        spool,
        r.kind,
        r.issued_on,
        r.vendor,
        r.amount,
        r.tax,
        r.currency,
        r.category,
        r.confidence,
        status,
        r.review_reason,
    )
