"""Receipt fields from a PDF's text, an HTML page, plain text or (with tesseract) an image.

Each found field adds to the confidence; a receipt below the review threshold waits for a person.
An attachment that cannot be read at all raises :class:`Unreadable` (the workflow dead-letters it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import shutil
import subprocess
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser

from receipts.models import Kind, Receipt

__all__ = ["CATEGORIES", "Unreadable", "extract", "kind_of", "parse_text", "text_of"]


logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings on a broken file: ours say it once


class Unreadable(ValueError):
    """The attachment is malformed: the reason names the file and what is wrong."""


CATEGORIES = {
    "aws": "Cloud services",
    "amazon web services": "Cloud services",
    "sakura": "Cloud services",
    "github": "Software",
    "jetbrains": "Software",
    "jr east": "Travel",
    "taxi": "Travel",
    "starbucks": "Meetings",
    "yodobashi": "Equipment",
}
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_NUMBER = r"([0-9][0-9,]*(?:\.[0-9]{1,2})?)"
_MONEY = r"(?:(USD|EUR|JPY|GBP|US\$|\$|€|¥|£)\s*)?" + _NUMBER + r"\s*(USD|EUR|JPY|GBP|円|yen)?"
_TOTAL = re.compile(r"(?:grand\s+total|total|amount\s+due|amount\s+paid|合計)[^0-9$€¥£A-Z\n]*" + _MONEY, re.I)
_TAX = re.compile(r"(?:tax|vat|消費税)(?:\s*[(\[]?\d+(?:\.\d+)?\s*%[)\]]?)?[^0-9$€¥£A-Z\n]*" + _MONEY, re.I)
_LOOSE = re.compile(
    r"(USD|EUR|JPY|GBP|US\$|\$|€|¥|£)\s*" + _NUMBER + "|" + _NUMBER + r"\s*(USD|EUR|JPY|GBP|円|yen)\b", re.I
)
_VENDOR = re.compile(r"^\s*(?:vendor|merchant|seller|from|store|issuer)\s*[:\uff1a]\s*(.+?)\s*$", re.I | re.M)
_SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "¥": "JPY", "£": "GBP", "円": "JPY", "YEN": "JPY"}


def kind_of(filename: str, content_type: str) -> Kind | None:
    """The kind of a receipt-like attachment, ``None`` for anything else."""
    name, ctype = filename.lower(), content_type.lower()
    if ctype == "application/pdf" or name.endswith(".pdf"):
        return "pdf"
    if ctype == "text/html" or name.endswith((".html", ".htm")):
        return "html"
    if ctype.startswith("image/") or name.endswith((".png", ".jpg", ".jpeg")):
        return "image"
    if ctype == "text/plain" or name.endswith(".txt"):
        return "text"
    return None


class _Text(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "tr", "br", "li", "h1", "h2", "h3", "h4", "table", "td", "th"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n" if tag != "td" else " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def text_of(data: bytes, kind: Kind, filename: str) -> str | None:
    """The attachment's text; ``None`` for an image without OCR. Raises :class:`Unreadable`."""
    if kind == "pdf":
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError

        if not data.lstrip().startswith(b"%PDF-"):
            raise Unreadable(f"{filename}: not a PDF (no %PDF- header)")
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            text = "\n".join(page.extract_text() or "" for page in reader.pages)
        except (PyPdfError, ValueError, KeyError, TypeError) as exc:
            raise Unreadable(f"{filename}: unreadable PDF ({type(exc).__name__}: {exc})") from None
        if not text.strip():
            raise Unreadable(f"{filename}: the PDF has no text layer")
        return text
    if kind == "image":
        return _ocr(data, filename)
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{filename}: not UTF-8 text") from None
    if kind == "html":
        parser = _Text()
        parser.feed(decoded)
        return re.sub(r"[ \t]+", " ", "".join(parser.parts))
    return decoded


def _ocr(data: bytes, filename: str) -> str | None:
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    done = subprocess.run([binary, "stdin", "stdout"], input=data, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise Unreadable(f"{filename}: OCR failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout.decode(errors="replace")


def extract(receipt_id: str, filename: str, kind: Kind, data: bytes, *, review_below: float) -> Receipt:
    digest = hashlib.sha256(data).hexdigest()
    text = text_of(data, kind, filename)
    if text is None:
        return Receipt(
            receipt_id=receipt_id,
            filename=filename,
            kind=kind,
            sha256=digest,
            review_reason="image receipt and no tesseract binary for OCR: enter its fields by hand",
        )
    receipt = parse_text(text).model_copy(
        update={"receipt_id": receipt_id, "filename": filename, "kind": kind, "sha256": digest}
    )
    if receipt.confidence < review_below:
        missing = [f for f in ("issued_on", "vendor", "amount", "currency") if getattr(receipt, f) is None]
        reason = f"confidence {receipt.confidence:.2f} < {review_below:.2f}"
        receipt.review_reason = reason + (f" (not found: {', '.join(missing)})" if missing else "")
    return receipt


def parse_text(text: str) -> Receipt:
    """The fields found in a receipt's text (IDs left blank) and the confidence they give."""
    score = 0.0
    issued_on = None
    if (m := _DATE.search(text)) is not None:
        try:
            issued_on = dt.date(int(m[1]), int(m[2]), int(m[3]))
            score += 0.25
        except ValueError:
            pass
    vendor = None
    if (m := _VENDOR.search(text)) is not None:
        vendor, score = m[1].strip()[:80], score + 0.25
    else:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if first and not _DATE.search(first) and len(first) <= 60:
            vendor, score = first, score + 0.1
    amount = currency = None
    if (m := _TOTAL.search(text)) is not None:
        amount, currency = _number(m[2]), _currency(m[1], m[3])
        score += 0.35 if amount is not None else 0
        score += 0.1 if currency else 0
    elif (m := _LOOSE.search(text)) is not None:  # an amount with a currency, but not called a total
        amount, currency = _number(m[2] or m[3]), _currency(m[1], m[4])
        score += 0.25 if amount is not None else 0
    tax = None
    if (m := _TAX.search(text)) is not None:
        tax = _number(m[2])
        score += 0.05 if tax is not None else 0
    category = next((c for key, c in CATEGORIES.items() if vendor and key in vendor.lower()), "Other")
    return Receipt(
        receipt_id="",
        filename="",
        kind="text",
        sha256="",
        issued_on=issued_on,
        vendor=vendor,
        amount=amount,
        tax=tax,
        currency=currency,
        category=category,
        confidence=round(min(score, 1.0), 2),
    )


def _number(raw: str) -> Decimal | None:
    try:
        return Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return None


def _currency(before: str | None, after: str | None) -> str | None:
    for token in (after, before):
        if token:
            return _SYMBOLS.get(token.upper(), _SYMBOLS.get(token, token.upper()))
    return None
