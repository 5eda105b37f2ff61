"""Failure-path timings: a failure to its successful retry, the last failed attempt to the DLQ.

Both are measured from the records the runtime writes and the DLQ stream's own timestamps,
with the retry back-off set to zero so the figure is the machinery's, not the policy's
(with the default policy add ``retry_base_s * 2 ** (delivery - 1)`` to the first one).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS

from actors import Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from foundation.settings import Settings
from subjects import DLQ_STREAM

__all__ = ["measure_failures"]


async def measure_failures(
    nc: NATS, settings: Settings, pool: asyncpg.Pool, prefix: str, runs: int = 200
) -> dict[str, Any]:
    retry_track, dead_track = f"{prefix}-flaky", f"{prefix}-broken"
    wf = Workflow(prefix)
    fast = TrackOptions(max_deliver=3, retry_base_s=0, retry_cap_s=0.001, breaker_threshold=0)

    @wf.track(retry_track, options=fast)
    async def flaky(ctx: TrackContext, payload: dict[str, Any]) -> dict[str, Any]:
        if ctx.deliveries == 1:
            raise RuntimeError("first delivery fails")
        return payload

    last_attempt: dict[str, float] = {}

    @wf.track(dead_track, options=fast)
    async def broken(ctx: TrackContext, payload: dict[str, Any]) -> dict[str, Any]:
        if ctx.deliveries == 3:
            last_attempt[ctx.correlation_id] = time.time()
        raise RuntimeError("always fails")

    async with Runtime(list(wf), settings=settings, name="tracks-bench-failures"):
        client = TracksClient(nc.jetstream())
        await asyncio.gather(
            *(client.trigger(retry_track, {}, correlation_id=f"{prefix}-r{i}") for i in range(runs))
        )
        await asyncio.gather(
            *(client.trigger(dead_track, {}, correlation_id=f"{prefix}-d{i}") for i in range(runs))
        )
        await _wait(pool, retry_track, "completed", runs)
        await _wait(pool, dead_track, "failed", runs * 3)
    retry_ms = [
        r["ms"]
        for r in await pool.fetch(
            """SELECT (extract(epoch FROM c.occurred_at - f.occurred_at) * 1000)::float8 AS ms
           FROM processing_logs f JOIN processing_logs c USING (correlation_id, track_id)
           WHERE f.track_id = $1 AND f.event_type = 'failed' AND c.event_type = 'completed'""",
            retry_track,
        )
    ]
    dlq_ms = []
    js = nc.jetstream()
    for i in range(runs):
        cid = f"{prefix}-d{i}"
        msg = await js.get_last_msg(DLQ_STREAM, f"dlq.{dead_track}.{cid}")
        if cid in last_attempt and msg.time is not None:  # the DLQ stream's own storage time
            dlq_ms.append((_epoch(msg.time) - last_attempt[cid]) * 1000)
    return {
        "runs": runs,
        "failure_to_successful_retry_ms": _stats(retry_ms),
        "last_failure_to_dead_letter_ms": _stats(dlq_ms),
    }


def _epoch(value: datetime | str) -> float:
    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).timestamp()


async def _wait(pool: asyncpg.Pool, track: str, event: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = await pool.fetchval(
            "SELECT count(*) FROM processing_logs WHERE track_id = $1 AND event_type = $2", track, event
        )
        if n >= count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{track}: fewer than {count} {event} records after {timeout:.0f}s")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    return {
        "n": len(v),
        "p50": round(statistics.median(v), 2),
        "p99": round(v[min(len(v) - 1, int(len(v) * 0.99))], 2),
        "max": round(v[-1], 2),
    }
