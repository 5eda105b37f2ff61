"""Priority: among pending messages the most urgent start first; waiting lifts the rest."""

from __future__ import annotations

import json

from actors import Runtime, TrackContext, TrackOptions, Workflow
from actors.runtime.priority import PriorityBuffer, level_of
from subjects import headers
from tests.support.waiting import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_levels_and_aging() -> None:
    assert [level_of(v) for v in ("high", "HIGH ", "normal", None, "low", "urgent")] == [0, 0, 1, 1, 2, 1]
    clock = Clock()
    buf: PriorityBuffer[str] = PriorityBuffer(aging_s=10, clock=clock)
    buf.add("low-1", 2)
    buf.add("normal-1", 1)
    buf.add("high-1", 0)
    assert buf.take(2) == ["high-1", "normal-1"]
    clock.now = 15  # low-1 waited 15 s: one level up (normal), still behind a new high
    buf.add("high-2", 0)
    assert buf.take(1) == ["high-2"]
    clock.now = 25  # 25 s: two levels up, level with high; older than any new high, so first
    buf.add("high-3", 0)
    assert buf.take(2) == ["low-1", "high-3"]
    assert len(buf) == 0


async def test_a_backlog_is_served_high_priority_first(settings, pool, js, unique):
    track = f"prio-{unique}"
    wf = Workflow(f"prio-{unique}")
    order: list[str] = []

    @wf.track(track, options=TrackOptions(concurrency=1, fetch_batch=64))
    async def job(ctx: TrackContext, payload: dict) -> dict:
        order.append(payload["p"])
        return payload

    # the backlog exists before any actor runs: 40 low, then 10 high
    for i in range(40):
        await js.publish(
            f"tracks.{track}.run.low{i}", json.dumps({"p": "low"}).encode(), headers={headers.PRIORITY: "low"}
        )
    for i in range(10):
        await js.publish(
            f"tracks.{track}.run.high{i}",
            json.dumps({"p": "high"}).encode(),
            headers={headers.PRIORITY: "high"},
        )
    async with Runtime(list(wf), settings=settings):

        async def drained() -> bool:
            return len(order) == 50

        await eventually(drained, timeout=60, what="the backlog")
    assert order[:10] == ["high"] * 10, order[:15]
    assert order.count("low") == 40  # low priority was served too, none lost
