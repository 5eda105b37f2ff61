"""Claim ticks that fall due together in one database call: one commit per burst, not per tick.

1,000 schedules due at the same second would otherwise be 1,000 commits (1,000 WAL flushes) in
a row, and the last tick would be published hundreds of milliseconds late. Claims queue while a
call is in flight; the next call takes everything queued (up to ``max_batch``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from .executions import Claim, ExecutionStore
from .schedules import Schedule

__all__ = ["ClaimBatcher"]

log = logging.getLogger(__name__)

_Pending = tuple[Schedule, datetime, str, "asyncio.Future[Claim]"]
_MIN_SLICE = 50


class ClaimBatcher:
    def __init__(
        self, executions: ExecutionStore, *, follow_s: float, max_batch: int = 500, parallel: int = 2
    ) -> None:
        self._executions = executions
        self._follow_s = follow_s
        self._max_batch = max_batch
        self._parallel = parallel
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self.calls = 0

    async def claim(self, schedule: Schedule, scheduled_for: datetime, correlation_id: str) -> Claim:
        future: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        self._pending.append((schedule, scheduled_for, correlation_id, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # ticks submitted in the same APScheduler pass queue up first
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            live = sorted((p for p in batch if not p[3].done()), key=lambda p: (p[0].id, p[1]))
            # Contiguous slices of one lock order run side by side (a core each) and cannot deadlock.
            size = max(_MIN_SLICE, -(-len(live) // self._parallel))
            await asyncio.gather(*(self._call(live[i : i + size]) for i in range(0, len(live), size)))

    async def _call(self, chunk: list[_Pending]) -> None:
        self.calls += 1
        try:
            claims = await self._executions.claim_many([p[:3] for p in chunk], follow_s=self._follow_s)
        except Exception as exc:  # every waiter sees the failure; its tick is logged by the caller
            for *_, future in chunk:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), claim in zip(chunk, claims, strict=True):
            if not future.done():
                future.set_result(claim)
