"""Wait for a condition in the database instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from nats.js import JetStreamContext

__all__ = ["chain_settled", "count_logs", "eventually"]


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 30.0,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


async def count_logs(pool: asyncpg.Pool, track: str, event_type: str) -> int:
    value = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE track_id = $1 AND event_type = $2", track, event_type
    )
    return int(value)


async def chain_settled(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    tracks: Sequence[str],
    runs: int,
    *,
    timeout: float = 60.0,
    what: str = "",
) -> None:
    """Wait until the last of ``tracks`` completed ``runs`` steps and every track's consumer is idle."""
    from tests.support.records import consumer_idle

    async def settled() -> bool:
        if await count_logs(pool, tracks[-1], "completed") < runs:
            return False
        return all([await consumer_idle(js, t) is not None for t in tracks])

    await eventually(settled, timeout=timeout, what=what or f"{runs} runs through {', '.join(tracks)}")
