"""A track whose handler never returns, for tests of messages no handler settles.

``tracks actor run tests.support.apps.hang_app`` with

    TRACKS_TEST_PREFIX     names the track ``<prefix>-hang``
    TRACKS_TEST_MARK_DIR   each delivery leaves a file ``<delivery>-<pid>`` there on arrival,
                           so a test knows which process holds which delivery

The track allows two deliveries, 2 s apart (``ack_wait``): killing the process holding the
second one leaves the message to the max-deliveries advisory.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from actors import TrackContext, TrackOptions, Workflow

__all__ = ["ACK_WAIT_S", "MAX_DELIVER", "app", "hang_track"]

ACK_WAIT_S = 2.0
MAX_DELIVER = 2


def hang_track(prefix: str) -> str:
    return f"{prefix}-hang"


def _build(prefix: str, mark_dir: Path | None) -> Workflow:
    wf = Workflow(f"hang-{prefix}")

    @wf.track(hang_track(prefix), options=TrackOptions(max_deliver=MAX_DELIVER, ack_wait_s=ACK_WAIT_S))
    async def hang(ctx: TrackContext, payload: dict[str, object]) -> None:
        if mark_dir is not None:
            (mark_dir / f"{ctx.deliveries}-{os.getpid()}").touch()
        await asyncio.sleep(3600)

    return wf


_mark = os.environ.get("TRACKS_TEST_MARK_DIR")
app = _build(os.environ.get("TRACKS_TEST_PREFIX", "hang-app"), Path(_mark) if _mark else None)
