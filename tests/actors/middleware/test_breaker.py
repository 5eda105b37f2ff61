"""The circuit breaker: opens after consecutive failures, stops fetching, probes, closes."""

from __future__ import annotations

import asyncio
import json

import pytest

from actors import PoisonMessage, Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from actors.middleware.breaker import BreakerMiddleware, BreakerState, CircuitBreaker, Transition
from tests.support.waiting import count_logs, eventually


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_state_machine() -> None:
    clock, moves = FakeClock(), []
    b = CircuitBreaker("t", threshold=3, cooldown_s=10, on_transition=moves.append, clock=clock)
    assert b.allowance(50) == 50
    for _ in range(2):
        b.record(False)
    b.record(True)  # a success resets the count
    for _ in range(3):
        b.record(False)
    assert b.state is BreakerState.OPEN and b.allowance(50) == 0
    assert b.seconds_until_probe() == 10
    clock.now = 10
    assert b.allowance(50) == 1 and b.state is BreakerState.HALF_OPEN
    assert b.allowance(50) == 0  # one probe at a time
    b.record(False)  # the probe failed: open again, cool down again
    assert b.state is BreakerState.OPEN and b.allowance(50) == 0
    clock.now = 20
    assert b.allowance(50) == 1
    b.probe_done()  # the probe proved nothing (a duplicate, say): another may go
    assert b.allowance(50) == 1
    b.record(True)
    assert b.state is BreakerState.CLOSED and b.allowance(50) == 50
    assert [(m.old, m.new) for m in moves] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert all(isinstance(m, Transition) for m in moves)


def test_threshold_zero_disables() -> None:
    b = CircuitBreaker("t", threshold=0, cooldown_s=1)
    for _ in range(100):
        b.record(False)
    assert b.state is BreakerState.CLOSED and b.allowance(7) == 7


async def test_poison_does_not_count() -> None:
    b = CircuitBreaker("t", threshold=1, cooldown_s=1)
    mw = BreakerMiddleware(b)

    async def bad_input(step: object) -> None:
        raise PoisonMessage("not JSON")

    with pytest.raises(PoisonMessage):
        await mw(None, bad_input)  # type: ignore[arg-type]
    assert b.state is BreakerState.CLOSED


async def test_opens_stops_fetching_and_closes_after_recovery(settings, pool, js, nc, unique):
    track = f"brk-{unique}"
    broken = {"on": True}
    wf = Workflow(f"breaker-{unique}")

    @wf.track(
        track,
        options=TrackOptions(
            breaker_cooldown_s=2.0,  # threshold: the default, 25; long enough that a loaded machine
            # polls the open state and counts before the half-open probe runs (one more failure)
            concurrency=1,
            fetch_batch=1,
            max_deliver=50,
            retry_base_s=0.01,
            retry_cap_s=0.02,
        ),
    )
    async def flaky(ctx: TrackContext, payload: dict) -> dict:
        if broken["on"]:
            raise RuntimeError("downstream API is down")
        return payload

    alerts: list[dict] = []

    async def collect(msg) -> None:
        alerts.append(json.loads(msg.data))

    sub = await nc.subscribe("tracks.alerts.breaker", cb=collect)
    async with Runtime(list(wf), settings=settings) as runtime:
        worker = runtime.workers[track]
        client = TracksClient(js)
        for i in range(30):
            await client.trigger(track, {"i": i})
        await eventually(lambda: _state(worker, BreakerState.OPEN), what="breaker open")

        async def threshold_recorded() -> bool:  # the 25th failure's row is written after the open
            return await count_logs(pool, track, "failed") >= 25

        await eventually(threshold_recorded, what="the failures that opened the breaker recorded")
        failed_when_open = await count_logs(pool, track, "failed")
        assert failed_when_open == 25  # concurrency 1: exactly the threshold, then no more fetches
        await asyncio.sleep(0.3)  # within the cool-down: nothing fetched, nothing attempted
        assert await count_logs(pool, track, "failed") == failed_when_open
        info = await js.consumer_info("TRACKS", track)
        assert info.num_pending + info.num_ack_pending >= 25  # still in the stream, nothing lost

        broken["on"] = False
        await eventually(lambda: _state(worker, BreakerState.CLOSED), what="breaker closed")

        async def all_done() -> bool:
            return await count_logs(pool, track, "completed") == 30

        await eventually(all_done, timeout=30, what="all 30 runs completed")
    await sub.unsubscribe()
    moves = [
        r["event_type"]
        for r in await pool.fetch(
            "SELECT event_type FROM processing_logs WHERE correlation_id = $1 ORDER BY id", f"breaker:{track}"
        )
    ]
    assert moves[0] == "breaker_open" and moves[-1] == "breaker_closed"
    assert "breaker_half_open" in moves
    await eventually(lambda: _async(any(a["details"]["to"] == "closed" for a in alerts)), what="alert events")
    first, last = alerts[0], next(a for a in alerts if a["details"]["to"] == "closed")
    assert (first["kind"], first["labels"]["track"], first["severity"]) == ("breaker", track, "critical")
    assert first["details"]["to"] == "open" and first["endsAt"] is None
    assert last["severity"] == "info" and last["endsAt"] is not None


async def _state(worker, state: BreakerState) -> bool:
    return worker.breaker.state is state


async def _async(value: bool) -> bool:
    return value
