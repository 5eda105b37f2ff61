"""Wait for a condition in the database instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg

__all__ = ["count_logs", "eventually"]


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
