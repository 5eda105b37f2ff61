"""The reference workflow: Gmail → Drive → file management → freee (bookkeeping).

The handlers are stand-ins for the real integrations: deterministic, offline, and shaped
like the real data, so the chain, its records and its payload hand-offs are real.

    tracks actor run tracks.examples.receipts
    tracks trigger gmail --payload '{"mailbox": "me@example.com", "count": 3}'
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

from actors import PermanentError, TrackContext, Workflow

__all__ = ["receipts"]

receipts = Workflow("receipts")


class ScanRequest(BaseModel):
    mailbox: str = "inbox@example.com"
    count: int = Field(default=2, ge=0, le=1000)


class Attachment(BaseModel):
    message_id: str
    filename: str
    amount_jpy: int
    vendor: str


class MailScan(BaseModel):
    mailbox: str
    attachments: list[Attachment]


class StoredFile(BaseModel):
    file_id: str
    sha256: str
    attachment: Attachment


class Stored(BaseModel):
    files: list[StoredFile]


class NamedFile(BaseModel):
    file_id: str
    name: str
    amount_jpy: int
    vendor: str


class Organized(BaseModel):
    files: list[NamedFile]
    duplicates_removed: int


class Booked(BaseModel):
    entries: list[str]
    total_jpy: int


@receipts.track("gmail")
async def scan_mail(ctx: TrackContext, request: ScanRequest) -> MailScan:
    """Find receipt attachments in the mailbox (stand-in: derived from the request)."""
    vendors = ["AWS", "JetBrains", "Shinkansen", "AWS"]
    found = [
        Attachment(
            message_id=f"{ctx.correlation_id[:8]}-{i}",
            filename=f"receipt-{i}.pdf",
            amount_jpy=1000 * (i + 1),
            vendor=vendors[i % len(vendors)],
        )
        for i in range(request.count)
    ]
    return MailScan(mailbox=request.mailbox, attachments=found)


@receipts.track("drive", after=["gmail"])
async def store_files(ctx: TrackContext, scan: MailScan) -> Stored:
    """Store each attachment; the idempotency key makes a retry overwrite, not duplicate."""
    files = []
    for a in scan.attachments:
        digest = hashlib.sha256(f"{a.vendor}:{a.amount_jpy}".encode()).hexdigest()
        files.append(StoredFile(file_id=f"{ctx.idempotency_key}:{a.message_id}", sha256=digest, attachment=a))
    return Stored(files=files)


@receipts.track("file_management", after=["drive"])
async def organize(ctx: TrackContext, stored: Stored) -> Organized:
    """Name files ``<vendor>_<amount>.pdf`` and drop content duplicates."""
    seen: set[str] = set()
    named = []
    for f in stored.files:
        if f.sha256 in seen:
            continue
        seen.add(f.sha256)
        a = f.attachment
        named.append(
            NamedFile(
                file_id=f.file_id,
                name=f"{a.vendor}_{a.amount_jpy}.pdf",
                amount_jpy=a.amount_jpy,
                vendor=a.vendor,
            )
        )
    return Organized(files=named, duplicates_removed=len(stored.files) - len(named))


@receipts.track("freee", after=["file_management"])
async def book(ctx: TrackContext, organized: Organized) -> Booked:
    """Register one bookkeeping entry per file (stand-in for the freee API)."""
    if any(f.amount_jpy < 0 for f in organized.files):
        raise PermanentError("negative amounts cannot be booked")
    entries = [f"{ctx.idempotency_key}:{f.name}" for f in organized.files]
    return Booked(entries=entries, total_jpy=sum(f.amount_jpy for f in organized.files))
