"""An APScheduler executor that hands a tick *all* its due run times, so coalescing is ours.

APScheduler's own executors drop or coalesce late run times silently (only an event says so);
the scheduler must record every skipped tick, so it takes the list and decides itself.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor

__all__ = ["TickExecutor"]

log = logging.getLogger(__name__)


class TickExecutor(BaseExecutor):  # type: ignore[misc]
    """Calls ``await job.func(*job.args, run_times)`` as a task on the scheduler's event loop."""

    def __init__(self) -> None:
        super().__init__()
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop: asyncio.AbstractEventLoop = scheduler._eventloop

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        task = self._loop.create_task(job.func(*job.args, list(run_times)))
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                self._run_job_success(job.id, [])
            elif (exc := t.exception()) is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, [])

        task.add_done_callback(done)

    async def drain(self, grace_s: float) -> int:
        """Wait for ticks in flight; cancel what is left after ``grace_s``; return how many were cancelled."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)

    def shutdown(self, wait: bool = True) -> None:
        """Tasks are drained by :meth:`drain` (a coroutine); nothing to do synchronously."""
