"""A workflow for actor subprocesses in tests: ``tracks actor run tests.support.apps.actor_app``.

Track names come from the environment so every test gets its own tracks, consumers and
subjects on the shared servers:

    TRACKS_TEST_PREFIX   names the tracks ``<prefix>-work`` and ``<prefix>-next`` (after work)
    TRACKS_TEST_SLEEP_S  how long ``work`` sleeps per step (default 0)

In-process tests build the same workflow with :func:`build_workflow`.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from actors import TrackContext, Workflow

__all__ = ["Done", "Job", "app", "build_workflow", "track_names"]


class Job(BaseModel):
    n: int


class Done(BaseModel):
    n: int
    pid: int


def track_names(prefix: str) -> tuple[str, str]:
    """The (work, next) track names for ``prefix``."""
    return f"{prefix}-work", f"{prefix}-next"


def build_workflow(prefix: str, sleep_s: float = 0.0) -> Workflow:
    work_name, next_name = track_names(prefix)
    wf = Workflow(f"test-app-{prefix}")

    @wf.track(work_name)
    async def work(ctx: TrackContext, job: Job) -> Done:
        """Sleep a little (so a test can interrupt the process mid-batch), then pass ``n`` on."""
        if sleep_s:
            await asyncio.sleep(sleep_s)
        return Done(n=job.n, pid=os.getpid())

    @wf.track(next_name, after=[work_name])
    async def next_step(ctx: TrackContext, done: Done) -> Done:
        """Downstream of ``work``: proves completions still chain after a crash or a restart."""
        return Done(n=done.n, pid=os.getpid())

    return wf


app = build_workflow(
    os.environ.get("TRACKS_TEST_PREFIX", "actor-app"), float(os.environ.get("TRACKS_TEST_SLEEP_S", "0"))
)
