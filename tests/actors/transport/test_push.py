"""Push delivery: a push track in a chain, exactly once, and replicas sharing its work."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import BaseModel

from actors import Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from actors.transport.pull import ConsumerSpec, reconcile
from actors.transport.push import DELIVER_PREFIX, PushSource, push_config, reconcile_push
from foundation.settings import Settings
from tests.support.records import event_counts, step_statuses
from tests.support.waiting import count_logs, eventually


class N(BaseModel):
    n: int


def pull_then_push(prefix: str) -> Workflow:
    wf = Workflow(f"push-{prefix}")

    @wf.track(f"{prefix}-pull")
    async def first(ctx: TrackContext, x: N) -> N:
        return N(n=x.n + 1)

    @wf.track(f"{prefix}-push", after=[f"{prefix}-pull"], options=TrackOptions(delivery="push"))
    async def second(ctx: TrackContext, x: N) -> N:
        await asyncio.sleep(0.005)  # long enough that both replicas get a share
        return N(n=x.n * 2)

    return wf


async def run_all(js: JetStreamContext, pool: asyncpg.Pool, track: str, last: str, runs: int) -> list[str]:
    client = TracksClient(js)
    cids = [cid for cid, _ in await asyncio.gather(*(client.trigger(track, {"n": i}) for i in range(runs)))]

    async def done() -> bool:
        return await count_logs(pool, last, "completed") >= runs

    await eventually(done, timeout=60, what=f"{runs} runs through the push track")
    return cids


async def assert_exactly_once(pool: asyncpg.Pool, js: JetStreamContext, track: str, cids: list[str]) -> None:
    completed = await event_counts(pool, track, "completed")
    assert set(completed) == set(cids) and set(completed.values()) == {1}
    assert set((await step_statuses(pool, track)).values()) == {"completed"}
    info = await js.stream_info("TRACKS", subjects_filter=f"tracks.{track}.completed.*")
    assert set((info.state.subjects or {}).values()) == {1} and len(info.state.subjects or {}) == len(cids)


async def test_push_track_in_a_chain_completes_each_run_once(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    wf = pull_then_push(unique)
    first, second = f"{unique}-pull", f"{unique}-push"
    async with Runtime(list(wf), settings=settings):
        info = await js.consumer_info("TRACKS", second)
        assert info.config.deliver_subject == f"{DELIVER_PREFIX}.{second}"
        assert info.config.deliver_group == second and info.config.flow_control
        assert info.config.filter_subjects == [
            f"tracks.{second}.run",
            f"tracks.{second}.run.*",
            f"tracks.{first}.completed.*",
        ]
        cids = await run_all(js, pool, first, second, 200)
        await asyncio.sleep(0.3)  # a duplicate would show up here
    await assert_exactly_once(pool, js, second, cids)
    outputs = await pool.fetch("SELECT output FROM track_steps WHERE track_id = $1", second)
    assert sorted(o["output"]["n"] for o in outputs) == [(i + 1) * 2 for i in range(200)]
    info = await js.consumer_info("TRACKS", second)
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_two_push_replicas_share_the_work(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    wf = pull_then_push(unique)
    first, second = f"{unique}-pull", f"{unique}-push"
    async with (
        Runtime(list(wf), settings=settings, name="replica-1") as one,
        Runtime(list(wf), settings=settings, name="replica-2") as two,
    ):
        cids = await run_all(js, pool, first, second, 200)

        async def settled() -> bool:  # records come first; the publish and ack follow
            return one.workers[second].processed + two.workers[second].processed >= 200

        await eventually(settled, what="both replicas settling their messages")
        shares = (one.workers[second].processed, two.workers[second].processed)
    await assert_exactly_once(pool, js, second, cids)
    assert sum(shares) >= 200 and min(shares) > 0, shares


async def test_fetch_is_bounded_and_close_hands_back_what_was_not_fetched(
    nc: NATS, js: JetStreamContext, unique: str
) -> None:
    spec = ConsumerSpec(
        f"{unique}-src", (f"tracks.{unique}-src.run.*",), ack_wait_s=30, max_deliver=5, max_ack_pending=8
    )
    for i in range(5):
        await js.publish(f"tracks.{unique}-src.run.c{i}", b"{}")
    source = PushSource(nc, js, spec, fetch_timeout_s=2)
    await source.start()
    try:
        assert len(await source.fetch(1)) == 1
        await asyncio.sleep(0.2)  # the other four are pushed meanwhile
        assert len(await source.fetch(2)) == 2
    finally:
        await source.close()  # 2 delivered but never fetched: nak'ed, not left to ack_wait
    again = PushSource(nc, js, spec, fetch_timeout_s=2)
    await again.start()
    try:
        got: list[Msg] = []
        while len(got) < 2:
            batch = await again.fetch(10)
            assert batch, "the unfetched messages were not handed back"
            got += batch
        assert {m.metadata.num_delivered for m in got} == {2}
    finally:
        await again.close()
    info = await js.consumer_info("TRACKS", spec.track)
    assert info.num_ack_pending == 5  # the three fetched ones are the worker's to settle: none here


async def test_a_pull_consumer_cannot_silently_become_push(js: JetStreamContext, unique: str) -> None:
    spec = ConsumerSpec(f"{unique}-was-pull", (f"tracks.{unique}-was-pull.run",), 30, 5, 8)
    await reconcile(js, spec)
    with pytest.raises(RuntimeError, match="a pull consumer cannot become a push one"):
        await reconcile_push(js, spec, push_config(spec))


async def test_held_messages_are_not_redelivered(nc: NATS, js: JetStreamContext, unique: str) -> None:
    """More may be pushed than the worker takes at once: waiting ones get heartbeats too."""
    spec = ConsumerSpec(
        f"{unique}-held", (f"tracks.{unique}-held.run.*",), ack_wait_s=1, max_deliver=5, max_ack_pending=8
    )
    source = PushSource(nc, js, spec, fetch_timeout_s=2)
    await source.start()
    try:
        for i in range(3):
            await js.publish(f"tracks.{unique}-held.run.c{i}", b"{}")
        await asyncio.sleep(2.5)  # two and a half ack waits without a fetch
        msgs = await source.fetch(10)
        assert [m.metadata.num_delivered for m in msgs] == [1, 1, 1]
        for m in msgs:
            await m.ack()
    finally:
        await source.close()
