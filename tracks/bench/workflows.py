"""The bench's workflows: a linear chain of pass-through tracks and a diamond with a join."""

from __future__ import annotations

from typing import Any

from actors import TrackContext, Workflow

__all__ = ["diamond_workflow", "linear_workflow"]


async def _passthrough(ctx: TrackContext, payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def linear_workflow(prefix: str, stages: int) -> Workflow:
    wf = Workflow(f"{prefix}-linear")
    for i in range(stages):
        wf.track(f"{prefix}-s{i}", after=[f"{prefix}-s{i - 1}"] if i else [])(_passthrough)
    return wf


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
