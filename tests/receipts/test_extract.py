"""Extraction, naming and the local drive, without servers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from receipts.drive import LocalDrive, file_name
from receipts.extract import Unreadable, extract, parse_text
from receipts.mail import FolderSource, attachments_of, parse
from receipts.settings import SAMPLE_MAIL


def test_fields_and_confidence_from_a_text_receipt() -> None:
    r = parse_text("Vendor: JR East\nDate: 2026/10/08\nTax (10%): ¥1,338\nTotal: ¥14,720\n")
    assert (r.issued_on, r.vendor, r.amount, r.tax, r.currency, r.category) == (
        dt.date(2026, 10, 8), "JR East", Decimal(14720), Decimal(1338), "JPY", "Travel"
    )  # fmt: skip
    assert r.confidence == 1.0
    vague = parse_text("Taxi\n2026-10-20\nabout 3,200 yen\n")
    assert vague.amount == Decimal(3200) and vague.confidence < 0.75


def test_every_sample_attachment_is_read_or_refused_with_its_reason() -> None:
    kinds, refused = set(), []
    for raw in FolderSource(SAMPLE_MAIL).messages(None):
        for att in attachments_of(parse(raw)):
            try:
                kinds.add(extract("x", att.filename, att.kind, att.data, review_below=0.75).kind)
            except Unreadable as exc:
                refused.append(str(exc))
    assert kinds == {"pdf", "html", "text"}
    assert len(refused) == 1 and refused[0].startswith("invoice-0931.pdf: unreadable PDF")


def test_an_image_without_tesseract_is_marked_for_review(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("receipts.extract.shutil.which", lambda _: None)
    r = extract("x", "photo.jpg", "image", b"\xff\xd8\xff", review_below=0.75)
    assert r.confidence == 0 and "tesseract" in (r.review_reason or "")


def test_file_names_are_safe_and_the_drive_never_overwrites(tmp_path: Path) -> None:
    name = file_name(dt.date(2026, 10, 3), "A/B Co. (Tokyo)", Decimal("42.10"), "USD", "PDF")
    assert name == "2026/10/2026-10-03_A-B-Co.-Tokyo_42.1USD.pdf"
    source = tmp_path / "r.pdf"
    source.write_bytes(b"one")
    drive = LocalDrive(tmp_path / "drive")
    first = drive.put(source, name)
    source.write_bytes(b"two")
    second = drive.put(source, name)
    assert second.endswith("_42.1USD_2.pdf") and Path(first).read_bytes() == b"one"
    aside = drive.move_aside(second, "_duplicates")
    assert Path(aside).read_bytes() == b"two" and not Path(second).exists()


def test_the_standard_schedules_start_the_product_workflows() -> None:
    import receipts
    from actors import Workflow
    from scheduler.standard import standard_schedules

    roots = {
        wf.name: [t.name for t in wf.roots] for wf in vars(receipts).values() if isinstance(wf, Workflow)
    }
    for schedule in standard_schedules():
        assert roots[str(schedule.job_type)] == [schedule.target], schedule.name
