"""freee accounting: one expense deal per bookkeeping entry (``POST /api/1/deals``), at most once.

OAuth2 bearer token from ``FREEE_ACCESS_TOKEN``, company from ``FREEE_COMPANY_ID``; the API's
base URL from ``FREEE_API_URL`` (a local server in the tests). An entry is posted only while it
has no deal ID, and its idempotency key goes along as the deal's ``ref_number``. When an earlier
POST's outcome is unknown (a lost reply, a crash before the deal ID was stored), the deal is
looked up by that ``ref_number`` (``GET /api/1/deals`` on its issue date) before posting again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from receipts.settings import FreeeSettings

__all__ = ["ACCOUNT_ITEMS", "FreeeClient", "FreeeError", "deal_body"]

ACCOUNT_ITEMS = {  # freee account item IDs per category (a company's own IDs differ: map them here)
    "Cloud services": 101,
    "Software": 102,
    "Travel": 103,
    "Meetings": 104,
    "Equipment": 105,
    "Other": 199,
}
TAX_CODE_PURCHASE_10 = 136
"""freee's tax code for taxable purchases at 10 %."""


class FreeeError(RuntimeError):
    """freee refused a deal (the status and freee's message say why)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def deal_body(
    company_id: int, issue_date: dt.date, category: str, amount: Decimal, key: str
) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "issue_date": issue_date.isoformat(),
        "type": "expense",
        "ref_number": key,
        "details": [
            {
                "account_item_id": ACCOUNT_ITEMS.get(category, ACCOUNT_ITEMS["Other"]),
                "tax_code": TAX_CODE_PURCHASE_10,
                "amount": int(amount.quantize(Decimal(1), ROUND_HALF_UP)),
            }
        ],
    }


@dataclass
class FreeeClient:
    settings: FreeeSettings
    timeout_s: float = 30.0

    PAGE = 100
    """Deals per ``GET /api/1/deals`` page (freee's maximum)."""

    async def find_deal(self, company_id: int, issue_date: dt.date, ref_number: str) -> int | None:
        """The ID of the deal of ``issue_date`` whose ``ref_number`` is ``ref_number``; None: none."""
        day = issue_date.isoformat()
        offset = 0
        async with self._http() as http:
            while True:
                reply = await http.get(
                    "/api/1/deals",
                    params={
                        "company_id": company_id,
                        "start_issue_date": day,
                        "end_issue_date": day,
                        "limit": self.PAGE,
                        "offset": offset,
                    },
                )
                if reply.status_code >= 400:
                    why = f"{reply.status_code} {reply.text[:200]}"
                    raise FreeeError(f"freee refused the lookup of {ref_number}: {why}", reply.status_code)
                deals = reply.json().get("deals") or []
                for deal in deals:
                    if deal.get("ref_number") == ref_number:
                        return int(deal["id"])
                if len(deals) < self.PAGE:
                    return None
                offset += len(deals)

    def _http(self) -> httpx.AsyncClient:
        assert self.settings.access_token is not None
        token = self.settings.access_token.get_secret_value()
        return httpx.AsyncClient(
            base_url=self.settings.api_url,
            timeout=self.timeout_s,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    async def post_deal(self, body: dict[str, Any]) -> int:
        """Create the deal; return its ID. Raises :class:`FreeeError` on a refusal."""
        async with self._http() as http:
            reply = await http.post("/api/1/deals", json=body)
        if reply.status_code >= 400:
            raise FreeeError(
                f"freee refused the deal {body.get('ref_number')}: {reply.status_code} {reply.text[:200]}",
                reply.status_code,
            )
        return int(reply.json()["deal"]["id"])
