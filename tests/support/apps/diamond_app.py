"""Workflows for ``tracks workflow show`` tests: a diamond split into phases, and a second one.

``a`` fans out to ``b`` and ``c``, which fan in to ``d`` (phase ``review``, manual), then ``e``.
"""

from __future__ import annotations

from actors import Phase, TrackContext, Workflow

__all__ = ["diamond", "single"]

diamond = Workflow(
    "diamond",
    phases=[Phase("intake", ("a", "b", "c")), Phase("review", ("d", "e"), manual=True)],
    timeout_s=600,
)
single = Workflow("single")


async def _noop(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
    return payload


diamond.track("a")(_noop)
diamond.track("b", after=["a"])(_noop)
diamond.track("c", after=["a"])(_noop)
diamond.track("e", after=["d"])(_noop)  # declared before its upstream: the output must still order it after d
diamond.track("d", after=["b", "c"])(_noop)
single.track("only")(_noop)
