"""Read what a run left behind: ``processing_logs``, ``track_steps``, the streams, the consumers."""

from __future__ import annotations

from collections import Counter

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

__all__ = [
    "consumer_idle",
    "event_counts",
    "step_statuses",
    "stream_subjects",
]


async def event_counts(pool: asyncpg.Pool, track: str, event_type: str) -> Counter[str]:
    """How many ``event_type`` rows each correlation ID has for ``track``."""
    rows = await pool.fetch(
        "SELECT correlation_id, count(*) AS n FROM processing_logs WHERE track_id = $1 AND event_type = $2 "
        "GROUP BY correlation_id",
        track,
        event_type,
    )
    return Counter({r["correlation_id"]: int(r["n"]) for r in rows})


async def step_statuses(pool: asyncpg.Pool, track: str) -> dict[str, str]:
    """``track_steps.status`` by correlation ID for ``track``."""
    rows = await pool.fetch("SELECT correlation_id, status FROM track_steps WHERE track_id = $1", track)
    return {r["correlation_id"]: r["status"] for r in rows}


async def stream_subjects(js: JetStreamContext, stream: str, subject_filter: str) -> dict[str, int]:
    """Messages per subject held by ``stream`` for ``subject_filter`` (empty when none)."""
    try:
        info = await js.stream_info(stream, subjects_filter=subject_filter)
    except NotFoundError:
        return {}
    return dict(info.state.subjects or {})


async def consumer_idle(js: JetStreamContext, durable: str, stream: str = "TRACKS") -> ConsumerInfo | None:
    """The consumer's info when it has nothing pending and nothing awaiting an ack, else ``None``."""
    info = await js.consumer_info(stream, durable)
    return info if info.num_pending == 0 and info.num_ack_pending == 0 else None
