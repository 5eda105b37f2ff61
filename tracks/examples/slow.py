"""A workflow with a long step that stops when its run is cancelled (``tracks cancel``).

    tracks actor run tracks.examples.slow
    tracks run tracks.examples.slow:slow --payload '{"seconds": 60}'
    tracks cancel <cid> --reason "not needed"

``export`` waits up to ``seconds`` for a cancellation; told, it stops (recorded ``cancelled``),
and ``publish`` never runs. Without a cancellation the run completes.
"""

from __future__ import annotations

from actors import TrackContext, Workflow

__all__ = ["slow"]

slow = Workflow("slow")


@slow.track("slow-prepare")
async def prepare(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
    return {"seconds": payload.get("seconds", 60)}


@slow.track("slow-export", after=["slow-prepare"])
async def export(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
    seconds = payload.get("seconds", 60)
    # long work in slices would call ctx.raise_if_cancelled() between them; here it only waits
    await ctx.wait_cancelled(timeout=float(seconds) if isinstance(seconds, int | float) else 60.0)
    ctx.raise_if_cancelled()  # StepCancelled: the step ends 'cancelled', nothing is retried
    return {"exported": True}


@slow.track("slow-publish", after=["slow-export"])
async def publish(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
    return {"published": payload.get("exported", False)}
