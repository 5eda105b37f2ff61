"""Bookkeeping entries posted to freee's deals API: checked by a local HTTP server that plays
freee (bearer token, JSON shape), once per receipt however often booking runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from actors import PermanentError
from receipts.books import book
from receipts.freee import FreeeError
from receipts.settings import FreeeSettings

TOKEN = "test-token-123"


class FakeFreee:
    def __init__(self) -> None:
        self.deals: list[dict[str, Any]] = []
        self.refuse_with: int | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                problem = outer.check(self.path, self.headers.get("Authorization"), body)
                status = outer.refuse_with or (400 if problem else 201)
                reply: dict[str, Any] = {"errors": [{"messages": [problem or "refused"]}]}
                if status == 201:
                    outer.deals.append(body)
                    reply = {"deal": {"id": 9000 + len(outer.deals), "company_id": body["company_id"]}}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def check(path: str, auth: str | None, body: dict[str, Any]) -> str | None:
        if path != "/api/1/deals":
            return f"unknown path {path}"
        if auth != f"Bearer {TOKEN}":
            return "bad token"
        detail = body["details"][0]
        if body["type"] != "expense" or not isinstance(body["company_id"], int):
            return "bad deal"
        if not {"account_item_id", "tax_code", "amount"} <= set(detail) or not isinstance(
            detail["amount"], int
        ):
            return "bad details"
        return None


@pytest.fixture
def freee() -> Iterator[FakeFreee]:
    fake = FakeFreee()
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


async def accepted_receipt(pool: asyncpg.Pool, receipt_id: str) -> None:
    await pool.execute(
        """INSERT INTO receipts (receipt_id, message_id, filename, sha256, spool_path, kind, issued_on,
                                 vendor, amount, tax, currency, category, confidence, status)
           VALUES ($1, '<m@x>', 'r.pdf', 'abc', '/nowhere', 'pdf', '2026-10-03', 'AWS', 4217.6, 383,
                   'JPY', 'Cloud services', 1, 'filed')""",
        receipt_id,
    )


def settings_for(fake: FakeFreee, token: str = TOKEN) -> FreeeSettings:
    return FreeeSettings(access_token=SecretStr(token), company_id=42, api_url=fake.url)


async def test_an_entry_is_posted_as_a_freee_deal_once(
    pool: asyncpg.Pool, freee: FakeFreee, unique: str
) -> None:
    receipt_id = f"freee-{unique}-0"
    await accepted_receipt(pool, receipt_id)
    assert await book(pool, settings_for(freee), receipt_id) == "posted"
    assert await book(pool, settings_for(freee), receipt_id) == "posted"  # a retry, a re-run
    assert freee.deals == [
        {
            "company_id": 42,
            "issue_date": "2026-10-03",
            "type": "expense",
            "ref_number": f"receipt:{receipt_id}",
            "details": [{"account_item_id": 101, "tax_code": 136, "amount": 4218}],
        }
    ]
    entry = await pool.fetchrow("SELECT * FROM bookkeeping_entries WHERE receipt_id = $1", receipt_id)
    assert entry is not None and (entry["status"], entry["freee_deal_id"]) == ("posted", 9001)


async def test_a_refusal_is_permanent_and_an_outage_is_retried(
    pool: asyncpg.Pool, freee: FakeFreee, unique: str
) -> None:
    receipt_id = f"freee-{unique}-1"
    await accepted_receipt(pool, receipt_id)
    with pytest.raises(PermanentError, match=r"refused the deal .*: 400"):
        await book(pool, settings_for(freee, token="wrong"), receipt_id)
    freee.refuse_with = 503
    with pytest.raises(FreeeError, match="503"):
        await book(pool, settings_for(freee), receipt_id)
    freee.refuse_with = None
    assert await book(pool, settings_for(freee), receipt_id) == "posted"
    assert len(freee.deals) == 1


async def test_without_a_token_entries_are_only_recorded(pool: asyncpg.Pool, unique: str) -> None:
    receipt_id = f"freee-{unique}-2"
    await accepted_receipt(pool, receipt_id)
    assert await book(pool, FreeeSettings(access_token=None, company_id=None), receipt_id) == "recorded"
