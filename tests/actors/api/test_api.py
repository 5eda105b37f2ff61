"""The ``tracksapi.*`` request API of a running runtime: chains, dependencies, clear errors."""

from __future__ import annotations

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import BaseModel

from actors import Runtime, TrackContext, TracksClient, Workflow
from actors.runtime.request_api import ApiError, ApiService, call
from foundation.settings import Settings
from tests.support.waiting import count_logs, eventually


class Count(BaseModel):
    n: int


def two_steps(prefix: str) -> Workflow:
    wf = Workflow(f"api-{prefix}")

    @wf.track(f"{prefix}-a")
    async def first(ctx: TrackContext, c: Count) -> Count:
        return Count(n=c.n + 1)

    @wf.track(f"{prefix}-b", after=[f"{prefix}-a"])
    async def second(ctx: TrackContext, c: Count) -> Count:
        return Count(n=c.n * 10)

    return wf


async def test_chain_and_deps_from_a_running_runtime(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, nc: NATS, unique: str
) -> None:
    wf = two_steps(unique)
    a, b = f"{unique}-a", f"{unique}-b"
    async with Runtime(list(wf), settings=settings):
        cid, _ = await TracksClient(js).trigger(a, {"n": 4})

        async def done() -> bool:
            return await count_logs(pool, b, "completed") >= 1

        await eventually(done, what="the two-step run")
        chain = await call(nc, "chain", {"correlationId": cid})
        deps = await call(nc, "deps", {"correlationId": cid, "track": b})
        root = await call(nc, "deps", {"correlationId": cid, "track": a})
        other = await call(nc, "deps", {"correlationId": "not-run", "track": b})

    assert chain["correlationId"] == cid
    assert [(e["track"], e["eventType"]) for e in chain["events"]] == [
        (a, "started"),
        (a, "completed"),
        (b, "started"),
        (b, "completed"),
    ]
    assert all(e["attempt"] == 1 and e["error"] is None for e in chain["events"])
    assert chain["events"][1]["durationMs"] is not None
    steps = {s["track"]: s for s in chain["steps"]}
    assert steps[a]["status"] == steps[b]["status"] == "completed"
    assert steps[a]["attempts"] == 1 and steps[a]["finishedAt"] >= steps[a]["startedAt"]
    assert steps[b]["outputBytes"] == len('{"n": 50}')  # jsonb's text form

    assert deps == {"track": b, "dependencies": [a], "completed": [a], "met": True}
    assert root == {"track": a, "dependencies": [], "completed": [], "met": True}
    assert other == {"track": b, "dependencies": [a], "completed": [], "met": False}


async def test_fan_in_dependencies_partly_met(pool: asyncpg.Pool, nc: NATS, unique: str) -> None:
    wf = Workflow(f"api-fan-{unique}")
    for name, after in [("x", []), ("y", []), ("z", ["x", "y"])]:

        async def handler(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
            return payload

        wf.track(f"{unique}-{name}", after=[f"{unique}-{u}" for u in after])(handler)
    cid = f"fan-{unique}"
    await pool.execute(
        "INSERT INTO track_steps (correlation_id, track_id, status, output, finished_at) "
        "VALUES ($1, $2, 'completed', '{}', now()), ($1, $3, 'running', NULL, NULL)",
        cid,
        f"{unique}-y",
        f"{unique}-x",
    )
    service = ApiService(nc, pool, [wf])
    service.endpoints = {name: service.endpoints[name] for name in ("deps",)}  # one endpoint is enough here
    await service.start()
    try:
        reply = await call(nc, "deps", {"correlationId": cid, "track": f"{unique}-z"})
    finally:
        await service.stop()
    assert reply == {
        "track": f"{unique}-z",
        "dependencies": [f"{unique}-x", f"{unique}-y"],
        "completed": [f"{unique}-y"],
        "met": False,
    }


async def test_errors_are_clear(settings: Settings, js: JetStreamContext, nc: NATS, unique: str) -> None:
    wf = two_steps(unique)
    async with Runtime(list(wf), settings=settings):
        with pytest.raises(ApiError, match=f"no records for correlation ID nope-{unique}") as caught:
            await call(nc, "chain", {"correlationId": f"nope-{unique}"})
        assert caught.value.code == 404
        with pytest.raises(ApiError, match=r"unknown track 'ghost' \(this service knows: ") as caught:
            await call(nc, "deps", {"correlationId": "c", "track": "ghost"})
        assert caught.value.code == 404
        with pytest.raises(ApiError, match="correlationId is required") as caught:
            await call(nc, "chain", {"cid": "x"})
        assert caught.value.code == 400
        msg = await nc.request("tracksapi.chain", b"not json", timeout=5)
        assert msg.headers is not None and msg.headers["Nats-Service-Error-Code"] == "400"
        assert msg.headers["Nats-Service-Error"].startswith("the request is not JSON")
