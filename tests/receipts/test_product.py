"""The six job types on the shipped sample data, in the order an operator meets them: scan
(twice: the second starts nothing), process (a malformed attachment dead-lettered, a vague one
held for review), duplicates moved aside, catch-up filing, the month's report, a verified backup."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import receipts
from actors.failures.dlq_ops import StoredLetter
from actors.ledger.progress import proceed, progress
from foundation.jetstream.publisher import EventPublisher
from receipts.intake import review_id, run_id
from receipts.mail import message_key, parse
from receipts.settings import SAMPLE_MAIL
from subjects import names
from tests.conftest import Servers
from tests.receipts.conftest import Product
from tests.support.cli import run_tracks
from tests.support.waiting import eventually

# The tests build on each other (the scan's keys, the files it filed): `make test` runs a module's
# tests on one xdist worker (--dist loadfile).
pytestmark = pytest.mark.timeout(120)


def read_csv(path: object) -> list[dict[str, str]]:
    with open(str(path), newline="") as f:
        return list(csv.DictReader(f))


def read_bytes(path: object) -> bytes:
    return Path(str(path)).read_bytes()


def is_file(path: object) -> bool:
    return Path(str(path)).is_file()


KEYS: dict[str, str] = {}


def key_of(stem: str) -> str:
    """The key email_scan gave the sample message ``stem`` (its run is ``rcpt-<key>``)."""
    return KEYS[stem]


def message_id_of(stem: str) -> str:
    raw = (SAMPLE_MAIL / f"{stem}.eml").read_bytes()
    return message_key(parse(raw), raw)[0]


async def settled(product: Product) -> None:
    async def done() -> bool:
        running = await product.pool.fetchval(
            "SELECT count(*) FROM workflow_runs WHERE workflow = 'receipt_process' AND status = 'running'"
        )
        started = await product.pool.fetchval(
            "SELECT count(*) FROM workflow_runs WHERE workflow = 'receipt_process'"
        )
        return bool(running == 0 and started == 11)

    await eventually(done, timeout=60, what="every receipt_process run finished")


async def test_a_scan_hands_each_message_with_receipts_over_once(product: Product) -> None:
    first = await product.run(receipts.email_scan)
    assert first["seen"] == 12 and first["new"] == 12
    assert first["without_receipts"] == 1  # the newsletter
    for path in SAMPLE_MAIL.glob("*.eml"):
        cid = await product.pool.fetchval(
            "SELECT run_id FROM receipts_seen_messages WHERE message_id = $1", message_id_of(path.stem)
        )
        KEYS[path.stem] = cid.removeprefix("rcpt-")
    assert sorted(first["handed_over"]) == sorted(
        run_id(key_of(p.stem)) for p in SAMPLE_MAIL.glob("*.eml") if "newsletter" not in p.name
    )
    await settled(product)
    again = await product.run(receipts.email_scan)
    assert again["new"] == 0 and again["handed_over"] == []
    assert (
        await product.pool.fetchval("SELECT count(*) FROM workflow_runs WHERE workflow = 'receipt_process'")
        == 11
    )
    assert await product.pool.fetchval("SELECT count(*) FROM receipts_seen_messages") == 12
    # a crash after starting a run but before recording it: the next scan starts the same run
    await product.pool.execute(
        "UPDATE receipts_seen_messages SET handed_off_at = NULL WHERE message_id = $1",
        message_id_of("01-aws"),
    )
    retried = await product.run(receipts.email_scan)
    assert retried["handed_over"] == [run_id(key_of("01-aws"))]
    await settled(product)
    assert (
        await product.pool.fetchval("SELECT count(*) FROM workflow_runs WHERE workflow = 'receipt_process'")
        == 11
    )
    assert await product.pool.fetchval("SELECT count(*) FROM receipts") == 10  # the broken message has none


async def test_clear_receipts_are_filed_under_their_name_and_booked(product: Product) -> None:
    rows = {r["receipt_id"]: r for r in await product.pool.fetch("SELECT * FROM receipts")}
    aws = rows[f"{key_of('01-aws')}-0"]
    assert (aws["vendor"], str(aws["amount"]), aws["currency"], aws["status"]) == (
        "AWS",
        "42.17",
        "USD",
        "filed",
    )
    assert aws["drive_path"].endswith("drive/2026/10/2026-10-03_AWS_42.17USD.pdf")
    assert read_bytes(aws["drive_path"]).startswith(b"%PDF-")
    jr = rows[f"{key_of('03-jr-east')}-0"]
    assert jr["drive_path"].endswith("2026-10-08_JR-East_14720JPY.txt")
    assert sum(r["status"] == "filed" for r in rows.values()) == 9
    assert await product.pool.fetchval("SELECT count(*) FROM bookkeeping_entries") == 9


async def test_a_malformed_attachment_is_dead_lettered_with_its_reason(product: Product) -> None:
    cid = run_id(key_of("10-broken"))
    run = await product.pool.fetchrow(
        "SELECT status, error FROM workflow_runs WHERE correlation_id = $1", cid
    )
    assert run is not None and run["status"] == "failed"
    assert product.runtime.nc is not None
    raw = await product.runtime.nc.jetstream().get_last_msg("DLQ", names.dlq("receipt_process", cid))
    letter = StoredLetter.of(raw)
    assert letter.error_type == "PermanentError"
    assert "invoice-0931.pdf" in (letter.error or "") and "malformed attachment" in (letter.error or "")


async def test_a_vague_receipt_waits_at_the_manual_gate_until_a_person_proceeds(product: Product) -> None:
    receipt_id = f"{key_of('11-taxi')}-0"
    cid = review_id(receipt_id)
    state = await progress(product.pool, cid)
    assert state.requires_manual_trigger and state.current_phase == "approve"
    assert await product.pool.fetchval("SELECT status FROM receipts WHERE receipt_id = $1", receipt_id) == (
        "needs_review"
    )
    assert product.runtime.nc is not None
    await proceed(product.pool, EventPublisher(product.runtime.nc.jetstream()), cid)

    async def booked() -> bool:
        return bool(
            await product.pool.fetchval(
                "SELECT count(*) FROM bookkeeping_entries WHERE receipt_id = $1", receipt_id
            )
        )

    await eventually(booked, what="the approved taxi receipt booked")
    path = await product.pool.fetchval("SELECT drive_path FROM receipts WHERE receipt_id = $1", receipt_id)
    assert path.endswith("2026-10-20_Taxi_3200JPY.txt")


async def test_duplicates_are_moved_aside_with_a_record_never_deleted(product: Product) -> None:
    done = (await product.run(receipts.duplicate_cleanup))["summary"]
    assert (done["exact"], done["near"]) == (1, 1)
    records = {r["receipt_id"]: r for r in await product.pool.fetch("SELECT * FROM receipts_duplicates")}
    exact, near = records[f"{key_of('08-fwd-sakura')}-0"], records[f"{key_of('09-yodobashi-again')}-0"]
    assert (exact["match"], exact["duplicate_of"]) == ("exact", f"{key_of('04-sakura')}-0")
    assert (near["match"], near["duplicate_of"]) == ("near", f"{key_of('07-yodobashi')}-0")
    for record in (exact, near):
        assert "/_duplicates/" in record["moved_to"] and is_file(record["moved_to"])
        assert not is_file(record["moved_from"])
    voided = await product.pool.fetchval("SELECT count(*) FROM bookkeeping_entries WHERE status = 'void'")
    assert voided == 2
    assert (await product.run(receipts.duplicate_cleanup))["summary"]["exact"] == 0


async def test_file_organize_catches_up_without_overwriting(product: Product) -> None:
    receipt_id = f"{key_of('05-starbucks')}-0"
    first = await product.pool.fetchval("SELECT drive_path FROM receipts WHERE receipt_id = $1", receipt_id)
    await product.pool.execute(  # as if a crash came between accepting and filing
        "UPDATE receipts SET status = 'accepted', drive_path = NULL WHERE receipt_id = $1", receipt_id
    )
    done = (await product.run(receipts.file_organize))["summary"]
    assert done["filed"] == 1
    second = await product.pool.fetchval("SELECT drive_path FROM receipts WHERE receipt_id = $1", receipt_id)
    assert second.endswith("2026-10-12_Starbucks_780JPY_2.txt") and is_file(first)


async def test_the_month_report_has_totals_entries_and_reviews(product: Product) -> None:
    done = (await product.run(receipts.report_generate, {"month": "2026-10"}))["summary"]
    assert done["entries"] == 8
    entries = read_csv(done["csv"])
    assert {e["vendor"] for e in entries} >= {"AWS", "JetBrains", "Taxi", "Yodobashi"}
    totals = {(t["by"], t["name"], t["currency"]): t["total"] for t in read_csv(done["totals"])}
    assert totals[("category", "Cloud services", "JPY")] == "5500.00"
    assert totals[("vendor", "Yodobashi", "JPY")] == "32980.00"  # the near duplicate is not counted twice
    page = read_bytes(done["html"]).decode()
    assert "Totals by category" in page and "Needs review (0)" in page


async def test_a_backup_is_verified_by_a_restore_and_only_the_last_n_kept(
    product: Product, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKS_RECEIPTS_BACKUP_KEEP", "1")
    first = (await product.run(receipts.backup_create))["summary"]
    second = (await product.run(receipts.backup_create))["summary"]
    assert first["tables_verified"] >= 10
    assert second["removed"] == [Path(first["path"]).name]
    assert [p.name for p in (product.home / "backups").iterdir()] == [Path(second["path"]).name]


async def test_tracks_run_starts_a_job_type_by_its_name(product: Product, servers: Servers) -> None:
    done = await run_tracks(
        servers, "run", "receipts:report_generate", "--wait", "--payload", '{"month": "2026-10"}'
    )
    assert done.code == 0, done.err
    assert json.loads(done.out)["summary"]["entries"] == 8
