"""A workflow for actor subprocesses in tests: ``tracks actor run tests.support.actor_app``.

Track names come from the environment so every test gets its own tracks, consumers and
subjects on the shared servers:

    TRACKS_TEST_PREFIX   names the tracks ``<prefix>-work`` and ``<prefix>-next`` (after work)
    TRACKS_TEST_SLEEP_S  how long ``work`` sleeps per step (default 0)
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from actors import TrackContext, Workflow

__all__ = ["Job", "app", "track_names"]


def track_names(prefix: str) -> tuple[str, str]:
    """The (work, next) track names for ``prefix``."""
    return f"{prefix}-work", f"{prefix}-next"


class Job(BaseModel):
    n: int


class Done(BaseModel):
    n: int
    pid: int


_PREFIX = os.environ.get("TRACKS_TEST_PREFIX", "actor-app")
_SLEEP_S = float(os.environ.get("TRACKS_TEST_SLEEP_S", "0"))
WORK, NEXT = track_names(_PREFIX)

app = Workflow(f"test-app-{_PREFIX}")


@app.track(WORK)
async def work(ctx: TrackContext, job: Job) -> Done:
    """Sleep a little (so a test can interrupt the process mid-batch), then pass ``n`` on."""
    if _SLEEP_S:
        await asyncio.sleep(_SLEEP_S)
    return Done(n=job.n, pid=os.getpid())


@app.track(NEXT, after=[WORK])
async def next_step(ctx: TrackContext, done: Done) -> Done:
    """Downstream of ``work``: proves completions still chain after a crash or a restart."""
    return Done(n=done.n, pid=os.getpid())
