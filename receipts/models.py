"""The product's data: what the workflows hand each other and what a receipt is."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "Done",
    "Extracted",
    "Filed",
    "MessageRef",
    "Receipt",
    "ReportRequest",
    "ScanRequest",
    "ScanResult",
]

Kind = Literal["pdf", "html", "text", "image"]


class Receipt(BaseModel):
    """What one attachment says: the fields found and how sure the extraction is (0..1)."""

    receipt_id: str
    filename: str
    kind: Kind
    sha256: str
    issued_on: dt.date | None = None
    vendor: str | None = None
    amount: Decimal | None = None
    tax: Decimal | None = None
    currency: str | None = None
    category: str = "Other"
    confidence: float = Field(default=0.0, ge=0, le=1)
    review_reason: str | None = None
    """Why a person should look at it (low confidence, no OCR, ...); ``None`` when it is clear."""


class ScanRequest(BaseModel):
    limit: int = Field(default=500, ge=1, le=10_000)
    """Most messages handed over by one scan (the rest wait for the next)."""


class MessageRef(BaseModel):
    """A message handed to ``receipt_process``: its raw bytes wait in the spool."""

    message_id: str
    key: str
    spool_path: str
    subject: str | None = None


class ScanResult(BaseModel):
    source: str
    seen: int
    new: int
    handed_over: list[str]
    """Correlation IDs of the ``receipt_process`` runs started (or re-announced) by this scan."""
    without_receipts: int


class Extracted(BaseModel):
    message_id: str
    receipts: list[Receipt]
    review: list[str] = Field(default_factory=list)
    """Receipt IDs that wait for a person (their ``receipt_review`` runs)."""


class Filed(BaseModel):
    filed: dict[str, str] = Field(default_factory=dict)
    """Receipt ID → its path in the drive."""


class Done(BaseModel):
    """A maintenance job's summary (counts and where its output is)."""

    summary: dict[str, int | str | list[str]] = Field(default_factory=dict)


class ReportRequest(BaseModel):
    month: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}$")
    """``YYYY-MM``; default the current month (UTC)."""
