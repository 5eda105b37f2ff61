"""An actor app for flow-control tests: ``tracks actor run tests.support.apps.flow_app``.

``TRACKS_TEST_PREFIX`` names its track ``<prefix>-slot`` (``max_running=1``); each step sleeps
``TRACKS_TEST_SLEEP_S`` (default 60): long enough to be killed while holding the slot.
"""

from __future__ import annotations

import asyncio
import os

from actors import TrackContext, TrackOptions, Workflow

__all__ = ["app", "build"]


def build(prefix: str, sleep_s: float) -> Workflow:
    wf = Workflow(f"flow-app-{prefix}")

    @wf.track(f"{prefix}-slot", options=TrackOptions(max_running=1))
    async def slot(ctx: TrackContext, payload: dict[str, int]) -> dict[str, int]:
        await asyncio.sleep(sleep_s)
        return {"pid": os.getpid()}

    return wf


app = build(os.environ.get("TRACKS_TEST_PREFIX", "flow"), float(os.environ.get("TRACKS_TEST_SLEEP_S", "60")))
