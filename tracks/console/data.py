"""What the pages show beyond the CLI's own queries: counts by status, a run's payloads, its trace.

Runs, steps and phases come from :func:`actors.ledger.listing.show_run`; this only adds the
stored payloads (``workflow_runs.input``/``result``, ``track_steps.output``, shortened) and the
run's trace ID (``workflow_runs.trace_context``, migration 0009) for a Jaeger link.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from tracks.cli.runs_admin import STATUSES

__all__ = ["PAYLOAD_LIMIT", "Payloads", "counts", "jaeger_link", "payloads", "shown"]

PAYLOAD_LIMIT = 16 * 1024
"""At most this many characters of one payload on a page or in the API."""


def shown(value: Any, limit: int = PAYLOAD_LIMIT) -> dict[str, Any]:
    """A payload as indented JSON text, cut to ``limit`` characters: {text, size, truncated}."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return {"text": text[:limit], "size": len(text.encode()), "truncated": len(text) > limit}


async def counts(pool: asyncpg.Pool, *, workflow: str | None, since: datetime | None) -> dict[str, int]:
    """How many runs have each status (every status, zero included), with the list's other filters."""
    rows = await pool.fetch(
        """SELECT lower(status) AS status, count(*) AS n FROM workflow_runs
           WHERE ($1::text IS NULL OR workflow = $1) AND ($2::timestamptz IS NULL OR started_at >= $2)
           GROUP BY 1""",
        workflow,
        since,
    )
    found = {r["status"]: int(r["n"]) for r in rows}
    return {s: found.get(s, 0) for s in STATUSES} | {"all": sum(found.values())}


@dataclass(frozen=True)
class Payloads:
    input: Any
    result: Any
    outputs: dict[str, Any]
    trace_id: str | None


async def payloads(pool: asyncpg.Pool, correlation_id: str) -> Payloads:
    run = await pool.fetchrow(
        "SELECT input, result, trace_context FROM workflow_runs WHERE correlation_id = $1", correlation_id
    )
    outputs = {
        r["track_id"]: r["output"]
        for r in await pool.fetch(
            "SELECT track_id, output FROM track_steps WHERE correlation_id = $1 AND output IS NOT NULL",
            correlation_id,
        )
    }
    if run is None:
        return Payloads(None, None, outputs, None)
    return Payloads(run["input"], run["result"], outputs, _trace_id(run["trace_context"]))


def _trace_id(traceparent: str | None) -> str | None:
    """The trace ID of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<flags>``)."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and all(c in "0123456789abcdef" for c in parts[1]):
        return parts[1]
    return None


def jaeger_link(jaeger_url: str | None, trace_id: str | None) -> str | None:
    """The trace in Jaeger's UI (``TRACKS_JAEGER_URL``, e.g. ``http://localhost:16686``)."""
    if not jaeger_url or not trace_id:
        return None
    return f"{jaeger_url.rstrip('/')}/trace/{trace_id}"
