"""Singleton strategies per key: repeated triggers for one key collapse to the newest
(``keep_newest``), or a newer one cancels the running one (``cancel_in_progress``)."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from nats.js import JetStreamContext
from pydantic import BaseModel

from actors import Runtime, TrackContext, TrackOptions, Workflow
from foundation.settings import Settings
from subjects import names
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("migrated")


class Scan(BaseModel):
    user_id: str
    n: int


async def trigger(js: JetStreamContext, track: str, user: str, n: int) -> str:
    cid = f"{track}-{user}-{n}"
    await js.publish(names.run(track, cid), json.dumps({"user_id": user, "n": n}).encode())
    return cid


async def statuses(pool: asyncpg.Pool, cids: list[str]) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT correlation_id, status FROM workflow_runs WHERE correlation_id = ANY($1)", cids
    )
    return {r["correlation_id"]: r["status"] for r in rows}


async def test_keep_newest_collapses_repeated_triggers_of_a_key(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    track = f"scan-{unique}"
    wf = Workflow(track)
    ran: list[tuple[str, int]] = []

    @wf.track(track, options=TrackOptions(key=lambda s: s.user_id, on_conflict="keep_newest"))
    async def email_scan(ctx: TrackContext, scan: Scan) -> None:
        ran.append((scan.user_id, scan.n))

    older = [await trigger(js, track, "alice", n) for n in range(4)]
    newest = await trigger(js, track, "alice", 4)
    other = await trigger(js, track, "bob", 0)
    async with Runtime(list(wf), settings=settings):

        async def settled() -> bool:
            seen = await statuses(pool, [*older, newest, other])
            return len(seen) == 6 and "running" not in seen.values()

        await eventually(settled, timeout=20, what="all six runs to end")
    assert sorted(ran) == [("alice", 4), ("bob", 0)]
    seen = await statuses(pool, [*older, newest, other])
    assert [seen[c] for c in older] == ["cancelled"] * 4
    assert seen[newest] == seen[other] == "completed"


async def test_cancel_in_progress_cancels_the_running_step_of_the_key(
    settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, unique: str
) -> None:
    track = f"sync-{unique}"
    wf = Workflow(track)
    started: list[int] = []
    finished: list[int] = []

    @wf.track(track, options=TrackOptions(key=lambda s: s.user_id, on_conflict="cancel_in_progress"))
    async def sync(ctx: TrackContext, scan: Scan) -> None:
        started.append(scan.n)
        for _ in range(200 if scan.n == 0 else 0):  # a long first step, stopping when cancelled
            ctx.raise_if_cancelled()
            await asyncio.sleep(0.05)
        finished.append(scan.n)

    async with Runtime(list(wf), settings=settings):
        first = await trigger(js, track, "alice", 0)
        await eventually(lambda: _has(started, 0), timeout=15, what="the first step")
        second = await trigger(js, track, "alice", 1)

        async def first_cancelled() -> bool:
            return (await statuses(pool, [first])).get(first) == "cancelled"

        await eventually(first_cancelled, timeout=15, what="the first run cancelled")
        await eventually(lambda: _has(finished, 1), timeout=15, what="the second step")

        async def second_completed() -> bool:
            return (await statuses(pool, [second])).get(second) == "completed"

        await eventually(second_completed, timeout=15, what="the second run completed")
    assert 0 not in finished


async def _has(items: list[int], item: int) -> bool:
    return item in items
