"""The bench's workflows: a linear chain of pass-through tracks and a diamond with a join."""

from __future__ import annotations

from typing import Any

from actors import TrackContext, TrackOptions, Workflow

__all__ = ["diamond_workflow", "linear_workflow"]


async def _passthrough(ctx: TrackContext, payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def linear_workflow(
    prefix: str, stages: int, options: TrackOptions | None = None, *, first_only: bool = False
) -> Workflow:
    """``options`` (flow limits in ``tracks bench --limits``) on every stage, or on the first only."""
    wf = Workflow(f"{prefix}-linear")
    for i in range(stages):
        opts = options if options is not None and (i == 0 or not first_only) else TrackOptions()
        wf.track(f"{prefix}-s{i}", after=[f"{prefix}-s{i - 1}"] if i else [], options=opts)(_passthrough)
    return wf


def bench_key(payload: dict[str, Any]) -> str:
    """The flow-control key of a bench workflow: one of 32 (its number modulo 32)."""
    return str(int(payload.get("i", 0)) % 32)


def diamond_workflow(prefix: str) -> Workflow:
    wf = Workflow(f"{prefix}-diamond")
    a, b, c, d = (f"{prefix}-{x}" for x in "abcd")
    wf.track(a)(_passthrough)
    wf.track(b, after=[a])(_passthrough)
    wf.track(c, after=[a])(_passthrough)

    async def join(ctx: TrackContext, payload: dict[str, Any]) -> dict[str, Any]:
        branch: dict[str, Any] = payload[b]
        return branch

    wf.track(d, after=[b, c])(join)
    return wf
