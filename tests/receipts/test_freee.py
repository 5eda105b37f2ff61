"""Bookkeeping entries posted to freee's deals API: checked by a local HTTP server that plays
freee (bearer token, JSON shape), once per receipt however often booking runs."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from actors import PermanentError
from receipts.books import book
from receipts.freee import FreeeClient, FreeeError
from receipts.settings import FreeeSettings

TOKEN = "test-token-123"


class FakeFreee:
    def __init__(self) -> None:
        self.deals: list[dict[str, Any]] = []
        self.refuse_with: int | None = None
        self.lose_next_reply = False
        """Create the next deal, then close the connection without answering (a lost reply)."""
        self.lookups = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                """``GET /api/1/deals``: the company's deals of an issue date range, paged."""
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                outer.lookups += 1
                if url.path != "/api/1/deals" or self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(400, {"errors": [{"messages": ["bad lookup"]}]})
                found = [
                    {"id": 9001 + i, **deal}
                    for i, deal in enumerate(outer.deals)
                    if deal["company_id"] == int(query["company_id"])
                    and query["start_issue_date"] <= deal["issue_date"] <= query["end_issue_date"]
                ]
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
                page = found[offset : offset + limit]
                self._reply(200, {"deals": page, "meta": {"total_count": len(found)}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                problem = outer.check(self.path, self.headers.get("Authorization"), body)
                status = outer.refuse_with or (400 if problem else 201)
                reply: dict[str, Any] = {"errors": [{"messages": [problem or "refused"]}]}
                if status == 201:
                    outer.deals.append(body)
                    reply = {"deal": {"id": 9000 + len(outer.deals), "company_id": body["company_id"]}}
                    if outer.lose_next_reply:
                        outer.lose_next_reply = False
                        self.close_connection = True
                        return  # created, but the client never hears of it
                self._reply(status, reply)

            def _reply(self, status: int, reply: dict[str, Any]) -> None:
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


@pytest.fixture(autouse=True)
async def forget_receipts(pool: asyncpg.Pool, unique: str) -> AsyncIterator[None]:
    """The receipts these tests make live in the suite's database: gone after each test, so that a
    later product run (``tracks demo``) on the same database does not find them as duplicates."""
    yield
    await pool.execute("DELETE FROM bookkeeping_entries WHERE receipt_id LIKE $1", f"freee-{unique}-%")
    await pool.execute("DELETE FROM receipts WHERE receipt_id LIKE $1", f"freee-{unique}-%")


async def accepted_receipt(pool: asyncpg.Pool, receipt_id: str) -> None:
    await pool.execute(
        """INSERT INTO receipts (receipt_id, message_id, filename, sha256, spool_path, kind, issued_on,
                                 vendor, amount, tax, currency, category, confidence, status)
           VALUES ($1, '<m@x>', 'r.pdf', 'abc', '/nowhere', 'pdf', '2026-10-03', 'AWS', 4217.6, 383,
                   'JPY', 'Cloud services', 1, 'filed')""",
        receipt_id,
    )


async def posted_as(pool: asyncpg.Pool, receipt_id: str) -> int | None:
    """The freee deal ID of the receipt's entry, once it is posted (None: not posted)."""
    entry = await pool.fetchrow("SELECT * FROM bookkeeping_entries WHERE receipt_id = $1", receipt_id)
    assert entry is not None
    return int(entry["freee_deal_id"]) if entry["status"] == "posted" else None


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
    assert await posted_as(pool, receipt_id) == 9001


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


async def test_a_deal_whose_reply_was_lost_is_found_not_posted_again(
    pool: asyncpg.Pool, freee: FakeFreee, unique: str
) -> None:
    """freee created the deal but the reply never came (or the process died before storing the
    deal ID): the retry asks freee for the entry's ref_number first and stores that deal's ID."""
    for other in range(3):  # other deals of the same day, on more than one page
        freee.deals.append({"company_id": 42, "issue_date": "2026-10-03", "ref_number": f"other-{other}"})
    receipt_id = f"freee-{unique}-3"
    await accepted_receipt(pool, receipt_id)
    freee.lose_next_reply = True
    with pytest.raises(httpx.HTTPError):
        await book(pool, settings_for(freee), receipt_id)
    assert len(freee.deals) == 4  # freee has it
    lookups = freee.lookups
    FreeeClient.PAGE = 2  # the lookup pages through the day's deals
    try:
        assert await book(pool, settings_for(freee), receipt_id) == "posted"
    finally:
        FreeeClient.PAGE = 100
    assert len(freee.deals) == 4, "posted twice"
    assert freee.lookups == lookups + 2
    assert await posted_as(pool, receipt_id) == 9004


async def test_an_unanswered_post_that_freee_never_saw_is_sent_again(
    pool: asyncpg.Pool, freee: FakeFreee, unique: str
) -> None:
    receipt_id = f"freee-{unique}-4"
    await accepted_receipt(pool, receipt_id)
    freee.refuse_with = 503  # the POST reached nobody who kept it
    with pytest.raises(FreeeError):
        await book(pool, settings_for(freee), receipt_id)
    freee.refuse_with = None
    assert await book(pool, settings_for(freee), receipt_id) == "posted"  # looked up, not found: posted
    assert [d["ref_number"] for d in freee.deals] == [f"receipt:{receipt_id}"]
