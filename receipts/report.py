"""The month's report: totals by vendor and by category, every entry, and what waits for review;
written as CSV (``entries-YYYY-MM.csv``, ``totals-YYYY-MM.csv``) and HTML (``report-YYYY-MM.html``)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import html
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

__all__ = ["MonthReport", "month_bounds", "write_report"]

Total = tuple[str, str, str, Decimal]
"""(by ``vendor``/``category``, name, currency, total)"""


@dataclass(frozen=True)
class MonthReport:
    month: str
    entries: int
    review: int
    csv_path: Path
    totals_path: Path
    html_path: Path


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    first = dt.date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first, following


async def write_report(pool: asyncpg.Pool, month: str, folder: Path) -> MonthReport:
    first, following = month_bounds(month)
    entries = await pool.fetch(
        """SELECT b.issue_date, b.vendor, b.category, b.amount, b.tax, b.currency, b.status,
                  b.freee_deal_id, r.filename, r.drive_path, r.receipt_id
           FROM bookkeeping_entries b JOIN receipts r USING (receipt_id)
           WHERE b.issue_date >= $1 AND b.issue_date < $2 AND b.status <> 'void'
           ORDER BY b.issue_date, b.vendor, b.receipt_id""",
        first,
        following,
    )
    review = await pool.fetch(
        """SELECT receipt_id, filename, issued_on, vendor, amount, currency, confidence, review_reason
           FROM receipts WHERE status = 'needs_review'
             AND (issued_on IS NULL OR (issued_on >= $1 AND issued_on < $2))
           ORDER BY created_at""",
        first,
        following,
    )
    totals: list[Total] = []
    for by in ("vendor", "category"):
        sums: dict[tuple[str, str], Decimal] = {}
        for e in entries:
            k = (e[by], e["currency"])
            sums[k] = sums.get(k, Decimal(0)) + e["amount"]
        totals += [(by, name, cur, amount) for (name, cur), amount in sorted(sums.items())]
    return await asyncio.to_thread(_write, month, folder, entries, totals, review)


def _write(
    month: str, folder: Path, entries: list[Any], totals: list[Total], review: list[Any]
) -> MonthReport:
    folder.mkdir(parents=True, exist_ok=True)
    columns = [
        "issue_date",
        "vendor",
        "category",
        "amount",
        "tax",
        "currency",
        "status",
        "freee_deal_id",
        "filename",
        "drive_path",
        "receipt_id",
    ]
    csv_path = folder / f"entries-{month}.csv"
    with csv_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([e[c] for c in columns] for e in entries)
    totals_path = folder / f"totals-{month}.csv"
    with totals_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["by", "name", "currency", "total"])
        writer.writerows(totals)
    html_path = folder / f"report-{month}.html"
    html_path.write_text(_html(month, entries, totals, review))
    return MonthReport(month, len(entries), len(review), csv_path, totals_path, html_path)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(month: str, entries: list[Any], totals: list[Total], review: list[Any]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Receipts {month}</title>",
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>",
        f"</head><body><h1>Receipts {month}</h1>",
    ]
    for by in ("vendor", "category"):
        parts.append(f"<h2>Totals by {by}</h2>")
        parts.append(_table([by, "currency", "total"], [[n, c, a] for b, n, c, a in totals if b == by]))
    parts.append(f"<h2>Entries ({len(entries)})</h2>")
    parts.append(
        _table(
            ["date", "vendor", "category", "amount", "tax", "currency", "status", "file"],
            [
                [
                    e["issue_date"],
                    e["vendor"],
                    e["category"],
                    e["amount"],
                    e["tax"],
                    e["currency"],
                    e["status"],
                    e["drive_path"],
                ]
                for e in entries
            ],
        )
    )
    parts.append(f"<h2>Needs review ({len(review)})</h2>")
    parts.append(
        _table(
            ["receipt", "file", "date", "vendor", "amount", "confidence", "why"],
            [
                [
                    r["receipt_id"],
                    r["filename"],
                    r["issued_on"],
                    r["vendor"],
                    r["amount"],
                    r["confidence"],
                    r["review_reason"],
                ]
                for r in review
            ],
        )
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)
