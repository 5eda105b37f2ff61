"""Writes the sample mailbox (``mail/*.eml``): `python receipts/sample_data/make_samples.py`.

A dozen messages from October 2026: PDF, HTML and text receipts, an exact duplicate (the same
PDF forwarded), a near duplicate (the same purchase as an HTML receipt), one malformed PDF, one
receipt too vague to book without a person, and one newsletter without attachments. The PDFs
are written by hand (one page of Helvetica text), so nothing beyond the standard library is needed.
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
OWNER = "ren@freelance.example"


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose text layer is ``lines``."""
    text = "\n".join(
        f"BT /F1 12 Tf 72 {720 - 18 * i} Td ({line.replace('(', '[').replace(')', ']')}) Tj ET"
        for i, line in enumerate(lines)
    ).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def html_receipt(vendor: str, date: str, rows: list[tuple[str, str]]) -> bytes:
    cells = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return (
        f"<html><body><h1>{vendor}</h1><p>Vendor: {vendor}</p><p>Date: {date}</p>"
        f"<table>{cells}</table><p>Thank you for your purchase.</p></body></html>"
    ).encode()


SAKURA_PDF = minimal_pdf(
    [
        "Sakura Internet Inc.",
        "Vendor: Sakura Internet",
        "Invoice date: 2026-10-10",
        "VPS 2G plan, October",
        "Tax (10%): JPY 500",
        "Total: JPY 5,500",
    ]
)

MESSAGES: list[tuple[str, str, str, list[tuple[str, str, bytes]]]] = [
    # (file stem, from, subject, [(filename, content type, bytes)])
    (
        "01-aws",
        "billing@aws.example",
        "Your AWS invoice for September",
        [
            (
                "aws-invoice-2026-10.pdf",
                "application/pdf",
                minimal_pdf(
                    [
                        "Amazon Web Services, Inc.",
                        "Vendor: AWS",
                        "Invoice date: 2026-10-03",
                        "EC2, S3, Route 53",
                        "Tax: USD 3.83",
                        "Total: USD 42.17",
                    ]
                ),
            )
        ],
    ),
    (
        "02-jetbrains",
        "sales@jetbrains.example",
        "JetBrains order receipt",
        [
            (
                "receipt.html",
                "text/html",
                html_receipt(
                    "JetBrains",
                    "2026-10-05",
                    [
                        ("PyCharm Professional, monthly", "EUR 20.41"),
                        ("VAT", "EUR 4.49"),
                        ("Total", "EUR 24.90"),
                    ],
                ),
            )
        ],
    ),
    (
        "03-jr-east",
        "noreply@jreast.example",
        "Ticket receipt",
        [
            (
                "receipt.txt",
                "text/plain",
                (
                    "JR East\nVendor: JR East\nDate: 2026/10/08\nShinkansen Tokyo - Sendai, reserved seat\n"
                    "Tax: ¥1,338\nTotal: ¥14,720\n"
                ).encode(),
            )
        ],
    ),
    (
        "04-sakura",
        "billing@sakura.example",
        "Invoice for October",
        [("sakura-2026-10.pdf", "application/pdf", SAKURA_PDF)],
    ),
    (
        "05-starbucks",
        "receipts@starbucks.example",
        "Your e-receipt",
        [
            (
                "receipt.txt",
                "text/plain",
                (
                    "Starbucks Coffee Shibuya\nVendor: Starbucks\n2026-10-12 10:41\nLatte Grande 2x\n"
                    "Tax 8%: ¥57\nTotal: ¥780\n"
                ).encode(),
            )
        ],
    ),
    (
        "06-github",
        "billing@github.example",
        "GitHub receipt",
        [
            (
                "github-receipt.html",
                "text/html",
                html_receipt(
                    "GitHub", "2026-10-15", [("GitHub Pro", "$4.00"), ("Tax", "$0.00"), ("Total", "USD 4.00")]
                ),
            )
        ],
    ),
    (
        "07-yodobashi",
        "shop@yodobashi.example",
        "Order confirmation and receipt",
        [
            (
                "yodobashi-receipt.pdf",
                "application/pdf",
                minimal_pdf(
                    [
                        "Yodobashi Camera",
                        "Vendor: Yodobashi",
                        "Date: 2026-10-18",
                        "USB-C dock, 1",
                        "Tax: JPY 2,998",
                        "Total: JPY 32,980",
                    ]
                ),
            )
        ],
    ),
    (
        "08-fwd-sakura",
        OWNER,
        "Fwd: Invoice for October",
        [("sakura-2026-10.pdf", "application/pdf", SAKURA_PDF)],
    ),
    (
        "09-yodobashi-again",
        "shop@yodobashi.example",
        "Your receipt (web copy)",
        [
            (
                "receipt.html",
                "text/html",
                html_receipt(
                    "Yodobashi",
                    "2026-10-18",
                    [("USB-C dock", "1"), ("Tax", "JPY 2,998"), ("Total", "JPY 32,980")],
                ),
            )
        ],
    ),
    (
        "10-broken",
        "billing@hosting.example",
        "Invoice (attachment)",
        [
            (
                "invoice-0931.pdf",
                "application/pdf",
                b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nthis file was cut off in transit",
            )
        ],
    ),
    (
        "11-taxi",
        OWNER,
        "taxi receipt photo transcript",
        [
            (
                "taxi-note.txt",
                "text/plain",
                b"Taxi\n2026-10-20, from the client's office\n"
                b"paid cash, about 3,200 yen (the driver's slip is lost)\n",
            )
        ],
    ),
    ("12-newsletter", "news@devweekly.example", "Dev Weekly #212", []),
]


def build() -> list[Path]:
    folder = HERE / "mail"
    folder.mkdir(exist_ok=True)
    written = []
    for i, (stem, sender, subject, attachments) in enumerate(MESSAGES):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, OWNER, subject
        msg["Date"] = format_datetime(dt.datetime(2026, 10, 3 + i, 9, 0, tzinfo=dt.UTC))
        msg["Message-ID"] = f"<sample-{stem}@receipts.example>"
        msg.set_content(f"{subject}\n\nSample message {i + 1} of the receipts product's sample mailbox.\n")
        for filename, ctype, data in attachments:
            main, sub = ctype.split("/")
            msg.add_attachment(data, maintype=main, subtype=sub, filename=filename)
        path = folder / f"{stem}.eml"
        path.write_bytes(bytes(msg))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(path.relative_to(HERE.parent.parent))
