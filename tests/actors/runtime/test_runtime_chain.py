"""A linear chain of four tracks, end to end against the real servers."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from actors import Runtime, TrackContext, TracksClient, Workflow
from tests.support.waiting import count_logs, eventually


class Number(BaseModel):
    n: int
    seen: list[str] = []


def chain_of_four(prefix: str) -> Workflow:
    wf = Workflow(f"chain-{prefix}")
    names = [f"{prefix}-s{i}" for i in range(4)]
    for i, name in enumerate(names):

        async def handler(ctx: TrackContext, payload: Number, _name: str = name) -> Number:
            return Number(n=payload.n + 1, seen=[*payload.seen, _name])

        wf.track(name, after=[names[i - 1]] if i else [])(handler)
    return wf


async def test_four_track_chain_many_runs(settings, pool, js, unique):
    wf = chain_of_four(unique)
    names = [t.name for t in wf]
    runs = 1000
    async with Runtime(list(wf), settings=settings):
        client = TracksClient(js)
        cids = await asyncio.gather(*(client.trigger(names[0], {"n": i}) for i in range(runs)))
        cids = [cid for cid, _ in cids]

        async def all_done() -> bool:
            return await count_logs(pool, names[-1], "completed") >= runs

        await eventually(all_done, timeout=120, what=f"{runs} runs through 4 tracks")

    rows = await pool.fetch(
        """SELECT correlation_id, track_id, event_type, occurred_at, id FROM processing_logs
           WHERE track_id = ANY($1) ORDER BY correlation_id, occurred_at, id""",
        names,
    )
    by_cid: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by_cid.setdefault(r["correlation_id"], []).append((r["track_id"], r["event_type"]))
    expected = [(name, ev) for name in names for ev in ("started", "completed")]
    assert set(by_cid) == set(cids)
    for cid in cids:
        assert by_cid[cid] == expected, (cid, by_cid[cid])

    # exactly one completion event per track and run on the stream
    for name in names:
        info = await js.stream_info("TRACKS", subjects_filter=f"tracks.{name}.completed.*")
        per_subject = info.state.subjects or {}
        assert sum(per_subject.values()) == runs
        assert set(per_subject) == {f"tracks.{name}.completed.{cid}" for cid in cids}

    outputs = await pool.fetch("SELECT output FROM track_steps WHERE track_id = $1", names[-1])
    assert sorted(o["output"]["n"] for o in outputs) == [i + 4 for i in range(runs)]
    assert all(o["output"]["seen"] == names for o in outputs)
