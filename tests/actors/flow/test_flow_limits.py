"""Flow control across replicas (actors/flow/): two runtimes in one process share each limit
through PostgreSQL; a step that waits is held (no delivery burnt), other keys keep flowing."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import pytest
from nats.js import JetStreamContext
from pydantic import BaseModel

from actors import Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from actors.errors import WorkflowError
from actors.flow import Limit, parse_rate
from actors.flow.store import FlowStore
from actors.track import Track
from foundation.settings import Settings
from subjects import headers, names
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("migrated")


class Job(BaseModel):
    user_id: str
    n: int


@asynccontextmanager
async def replicas(tracks: list[Track], settings: Settings, n: int = 2) -> AsyncIterator[list[Runtime]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Runtime(tracks, settings=settings)) for _ in range(n)]


async def publish(js: JetStreamContext, track: str, jobs: list[tuple[str, int]]) -> None:
    for user, n in jobs:
        await js.publish(names.run(track, f"{user}-{n}"), json.dumps({"user_id": user, "n": n}).encode())


def deliveries_burnt(rts: list[Runtime], track: str) -> int:
    return sum(rt.workers[track].redeliveries_ignored for rt in rts)


async def test_a_rate_limit_holds_across_two_replicas(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    track = f"rate-{unique}"
    wf = Workflow(track)
    starts: list[float] = []

    @wf.track(track, options=TrackOptions(rate_limit="5/s", concurrency=8, max_held=4))
    async def call(ctx: TrackContext, job: Job) -> None:
        starts.append(time.monotonic())

    await publish(js, track, [("u", i) for i in range(30)])  # 6 s worth at 5/s
    async with replicas(list(wf), settings) as rts:
        await eventually(lambda: _at_least(starts, 30), timeout=30, what="30 rate-limited starts")
        per_replica = [rt.workers[track].processed for rt in rts]
    starts.sort()
    worst = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    span = starts[-1] - starts[0]
    gap = min(b - a for a, b in itertools.pairwise(starts))
    six = min(b - a for a, b in zip(starts, starts[5:], strict=False))
    print(
        f"\nrate 5/s: 30 starts over {span:.2f}s; busiest 1-s window {worst}; "
        f"closest starts {gap * 1000:.0f} ms; closest 6 within {six:.3f}s; replicas ran {per_replica}"
    )
    assert worst <= 5, f"{worst} starts in one second (limit 5/s)"
    assert all(n > 0 for n in per_replica), "one replica did all the work: the limit was not shared"


async def test_max_running_is_held_across_replicas(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    track = f"slots-{unique}"
    wf = Workflow(track)
    running, peak, done = [0], [0], []

    @wf.track(track, options=TrackOptions(max_running=2, concurrency=4))
    async def work(ctx: TrackContext, job: Job) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.1)
        running[0] -= 1
        done.append(job.n)

    await publish(js, track, [("u", i) for i in range(16)])
    async with replicas(list(wf), settings) as rts:
        await eventually(lambda: _at_least(done, 16), timeout=30, what="16 steps")
        assert deliveries_burnt(rts, track) == 0
    assert peak[0] == 2, f"{peak[0]} ran at once (max_running=2)"
    assert sorted(done) == list(range(16))


async def test_one_running_per_key_while_other_keys_flow(
    settings: Settings, js: JetStreamContext, unique: str, pool: asyncpg.Pool
) -> None:
    track = f"perkey-{unique}"
    wf = Workflow(track)
    running: Counter[str] = Counter()
    worst_per_key, peak_total, done = [0], [0], []

    @wf.track(track, options=TrackOptions(key=lambda j: j.user_id, max_running_per_key=1, concurrency=8))
    async def scan(ctx: TrackContext, job: Job) -> None:
        running[job.user_id] += 1
        worst_per_key[0] = max(worst_per_key[0], running[job.user_id])
        peak_total[0] = max(peak_total[0], sum(running.values()))
        await asyncio.sleep(0.05)
        running[job.user_id] -= 1
        done.append(job.n)

    await publish(js, track, [(f"user{u}", u * 100 + i) for i in range(6) for u in range(3)])
    async with replicas(list(wf), settings) as rts:
        await eventually(lambda: _at_least(done, 18), timeout=30, what="18 steps")
        assert deliveries_burnt(rts, track) == 0
    assert worst_per_key[0] == 1, f"{worst_per_key[0]} steps of one key ran at once"
    assert peak_total[0] >= 2, "a busy key held up the others"
    # every message ran once, on its first delivery: waiting burnt none
    rows = await pool.fetch("SELECT count(*) AS n FROM flow_leases WHERE name = $1", f"track:{track}:key")
    assert rows[0]["n"] == 0, "slots left behind after every step settled"


async def test_a_single_message_is_not_stuck_behind_another_users_backlog(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    track = f"fair-{unique}"
    wf = Workflow(track)
    order: list[str] = []

    @wf.track(track, options=TrackOptions(key=lambda j: j.user_id, max_running=1, concurrency=4))
    async def imp(ctx: TrackContext, job: Job) -> None:
        order.append(job.user_id)
        await asyncio.sleep(0.01)

    await publish(js, track, [("big", i) for i in range(200)] + [("small", 0)])
    async with replicas(list(wf), settings, n=1):
        await eventually(lambda: _contains(order, "small"), timeout=30, what="the small user's step")
    position = order.index("small")
    print(f"\nfairness: the small user's one step ran {position} step(s) behind a backlog of 200")
    assert position <= 5, f"the small user's step waited {position} steps"


async def test_a_dead_replicas_slot_comes_back_within_its_lease(
    settings: Settings, js: JetStreamContext, unique: str, pool: asyncpg.Pool
) -> None:
    """A replica killed while running a step leaves its lease row behind: nobody releases it."""
    track = f"lease-{unique}"
    wf = Workflow(track)
    started: list[float] = []

    @wf.track(track, options=TrackOptions(max_running=1, ack_wait_s=2))
    async def work(ctx: TrackContext, job: Job) -> None:
        started.append(time.monotonic())

    await pool.execute(
        "INSERT INTO flow_leases (name, key, holder, expires_at) "
        "VALUES ($1, '', 'killed-replica', clock_timestamp() + interval '2 seconds')",
        f"track:{track}",
    )
    t0 = time.monotonic()
    await publish(js, track, [("u", 1)])
    async with replicas(list(wf), settings, n=1):
        await eventually(lambda: _at_least(started, 1), timeout=10, what="the step after the lease ran out")
    waited = started[0] - t0
    assert 1.0 <= waited <= 2 + 1.5, f"started after {waited:.1f}s (lease of 2s)"


def test_limits_are_checked_when_declared(unique: str) -> None:
    assert parse_rate("3/s") == (3, 1.0)
    assert parse_rate("100/m") == (100, 60.0)
    assert parse_rate("5/10s") == (5, 10.0)
    with pytest.raises(WorkflowError, match="must look like"):
        parse_rate("3 per second")
    with pytest.raises(WorkflowError, match="need key"):
        TrackOptions(max_running_per_key=1)
    Limit(f"api-{unique}", rate="3/s")
    Limit(f"api-{unique}", rate="3/s")  # the same definition again: fine
    with pytest.raises(WorkflowError, match="defined twice"):
        Limit(f"api-{unique}", rate="4/s")


async def _at_least(items: list[float] | list[int] | list[str], n: int) -> bool:
    return len(items) >= n


async def _contains(items: list[str], item: str) -> bool:
    return item in items


async def test_an_open_breaker_gives_back_what_waits_at_the_gate(
    settings: Settings, js: JetStreamContext, unique: str, pool: asyncpg.Pool
) -> None:
    """The breaker opens: held and admitted steps are handed back and their slots released, so
    no slot sits idle on a replica that will not start anything for the cooldown."""
    track = f"brk-{unique}"
    wf = Workflow(track)
    calls: list[int] = []

    @wf.track(
        track,
        options=TrackOptions(
            max_running=5, concurrency=2, breaker_threshold=2, breaker_cooldown_s=30, retry_base_s=5
        ),
    )
    async def flaky(ctx: TrackContext, job: Job) -> None:
        calls.append(job.n)
        raise RuntimeError("the service is down")

    await publish(js, track, [("u", i) for i in range(10)])
    async with Runtime(list(wf), settings=settings) as rt:
        worker = rt.workers[track]
        await eventually(lambda: _at_least(calls, 2), timeout=15, what="two failures")

        async def given_back() -> bool:
            leases = await pool.fetchval("SELECT count(*) FROM flow_leases WHERE name = $1", f"track:{track}")
            return worker.breaker.state != "closed" and worker.in_flight == 0 and leases == 0

        await eventually(given_back, timeout=15, what="held steps and their slots given back")


async def test_the_sweep_drops_only_what_no_acquirer_needs(pool: asyncpg.Pool, unique: str) -> None:
    name = f"swept-{unique}"
    store = FlowStore(pool, f"holder-{unique}")
    await store.define([Limit(name, rate="2/s", max_running=3)])
    await pool.execute(
        "INSERT INTO flow_starts (name, key, at) VALUES ($1, '', now() - interval '1 hour'), ($1, '', now())",
        name,
    )
    await pool.execute(
        "INSERT INTO flow_leases (name, key, holder, expires_at) VALUES "
        "($1, '', 'gone', now() - interval '2 minutes'), ($1, '', 'alive', now() + interval '1 minute')",
        name,
    )
    await store.sweep()
    assert await pool.fetchval("SELECT count(*) FROM flow_starts WHERE name = $1", name) == 1
    assert await pool.fetchval("SELECT array_agg(holder) FROM flow_leases WHERE name = $1", name) == ["alive"]


async def test_a_new_key_is_asked_for_behind_many_busy_keys(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    """20 users each run a long step and have more waiting (refused: one per user); a 21st
    user's single step still starts at once, while the 20 are running."""
    track = f"busy-{unique}"
    wf = Workflow(track)
    release = asyncio.Event()
    running = [0]
    late_saw: list[int] = []

    @wf.track(track, options=TrackOptions(key=lambda j: j.user_id, max_running_per_key=1, concurrency=32))
    async def work(ctx: TrackContext, job: Job) -> None:
        if job.user_id == "late":
            late_saw.append(running[0])
            return
        running[0] += 1
        try:
            if job.n == 0:
                await asyncio.wait_for(release.wait(), timeout=20)
        finally:
            running[0] -= 1

    await publish(js, track, [(f"user{u}", n) for n in range(3) for u in range(20)])
    async with replicas(list(wf), settings, n=1):
        await eventually(lambda: _at_least([0] * running[0], 20), timeout=15, what="20 long steps")
        await publish(js, track, [("late", 0)])
        await eventually(lambda: _at_least(late_saw, 1), timeout=15, what="the late user's step")
        release.set()
    assert late_saw == [20], f"the late user's step started with {late_saw} long steps running (20)"


async def test_a_high_trigger_overtakes_what_waits_at_the_gate(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    track = f"prio-{unique}"
    wf = Workflow(track)
    order: list[str] = []

    @wf.track(track, options=TrackOptions(max_running=1))
    async def work(ctx: TrackContext, payload: dict[str, str]) -> None:
        order.append(payload["p"])
        await asyncio.sleep(0.02)

    low = {headers.PRIORITY: "low"}
    for i in range(100):
        await js.publish(names.run(track, f"low{i}"), json.dumps({"p": f"low{i}"}).encode(), headers=low)
    async with replicas(list(wf), settings, n=1):
        await eventually(lambda: _at_least(order, 5), timeout=15, what="the backlog under way")
        done_before = len(order)
        await TracksClient(js).trigger(track, {"p": "high"}, priority="high")
        await eventually(lambda: _contains(order, "high"), timeout=15, what="the high trigger")
    # it is pulled from its lane at the worker's next fetch (at most fetch_timeout_s, 1 s, while
    # the main consumer long-polls), then overtakes every low step held at the gate
    steps_later = order.index("high") - done_before
    print(f"\nhigh trigger at the gate: ran {steps_later} steps after it was sent, 100 low ones held")
    assert order.index("high") < 60, f"the high trigger waited {steps_later} steps behind 100 held low ones"
