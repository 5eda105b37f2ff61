"""Fan-in: a track with several upstreams runs once per run, with all their outputs."""

from __future__ import annotations

import asyncio
import collections

from actors import Runtime, TrackContext, TracksClient, Workflow
from tests.support.waiting import eventually


def diamond(prefix: str, seen: collections.Counter[str], inputs: dict[str, dict]) -> Workflow:
    wf = Workflow(f"{prefix}-diamond")
    a, b, c, d = (f"{prefix}-{x}" for x in "abcd")

    @wf.track(a)
    async def start(ctx: TrackContext, payload: dict) -> dict:
        return {"n": payload["n"]}

    @wf.track(b, after=[a])
    async def left(ctx: TrackContext, payload: dict) -> dict:
        return {"left": payload["n"] * 2}

    @wf.track(c, after=[a])
    async def right(ctx: TrackContext, payload: dict) -> dict:
        return {"right": payload["n"] * 3}

    @wf.track(d, after=[b, c])
    async def join(ctx: TrackContext, payload: dict) -> dict:
        seen[ctx.correlation_id] += 1
        inputs[ctx.correlation_id] = payload
        return {"sum": payload[b]["left"] + payload[c]["right"]}

    wf.validate()
    return wf


async def test_join_gets_both_outputs_and_the_run_completes(settings, pool, nc, unique):
    seen: collections.Counter[str] = collections.Counter()
    inputs: dict[str, dict] = {}
    wf = diamond(unique, seen, inputs)
    async with Runtime(list(wf), settings=settings):
        result = await TracksClient(nc).run(wf, {"n": 7}, timeout=30)
    assert result == {"sum": 7 * 2 + 7 * 3}
    (cid,) = list(seen)
    assert seen[cid] == 1
    assert inputs[cid] == {f"{unique}-b": {"left": 14}, f"{unique}-c": {"right": 21}}
    row = await pool.fetchrow("SELECT status, result FROM workflow_runs WHERE correlation_id = $1", cid)
    assert row["status"] == "completed"
    assert row["result"] == {"sum": 35}


async def test_two_replicas_of_the_join_run_it_exactly_once_per_run(settings, pool, nc, unique):
    """500 runs; B and C complete at nearly the same instant and two replicas of D race for each."""
    seen: collections.Counter[str] = collections.Counter()
    inputs: dict[str, dict] = {}
    wf = diamond(unique, seen, inputs)
    tracks = {t.name: t for t in wf}
    join = tracks[f"{unique}-d"]
    upstream = [t for name, t in tracks.items() if name != join.name]
    runs = 500
    async with (
        Runtime(upstream, settings=settings),
        Runtime([join], settings=settings, name="join-1"),
        Runtime([join], settings=settings, name="join-2"),
    ):
        client = TracksClient(nc)
        cids = await asyncio.gather(*(client.start(wf, {"n": i}) for i in range(runs)))

        async def all_joined() -> bool:
            n = await pool.fetchval(
                "SELECT count(*) FROM workflow_runs WHERE correlation_id = ANY($1) AND status = 'completed'",
                cids,
            )
            return int(n) == runs

        await eventually(all_joined, timeout=120, what=f"{runs} diamond runs")
    assert len(seen) == runs
    assert set(seen.values()) == {1}, collections.Counter(seen.values())
    completed = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE track_id = $1 AND event_type = 'completed'", join.name
    )
    assert completed == runs
    waiting_or_dup = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE track_id = $1 AND event_type = 'started'", join.name
    )
    assert waiting_or_dup == runs  # one start per run: the other upstream's event never started it
