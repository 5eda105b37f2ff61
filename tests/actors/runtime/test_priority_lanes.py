"""Priority beyond one fetch window: a high-priority trigger overtakes a backlog of low work
(its own lane), and a run's priority travels to its downstream steps."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from foundation.settings import Settings
from subjects import headers, names
from tests.support.waiting import eventually


async def test_a_late_high_trigger_overtakes_a_backlog_of_low_work(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    track = f"lane-{unique}"
    wf = Workflow(f"lane-{unique}")
    order: list[str] = []

    @wf.track(track, options=TrackOptions(concurrency=1, fetch_batch=8))
    async def job(ctx: TrackContext, payload: dict[str, str]) -> dict[str, str]:
        order.append(payload["p"])
        await asyncio.sleep(0.005)
        return payload

    for i in range(300):  # the backlog: far more than one fetch window (8)
        await js.publish(
            names.run(track, f"low{i}"),
            json.dumps({"p": f"low{i}"}).encode(),
            headers={headers.PRIORITY: "low"},
        )
    async with Runtime(list(wf), settings=settings) as rt:
        await eventually(lambda: _at_least(order, 20), timeout=30, what="the backlog under way")
        done_before = len(order)
        await TracksClient(js).trigger(track, {"p": "high"}, priority="high")
        await eventually(lambda: _contains(order, "high"), timeout=30, what="the high trigger ran")
        steps_later = order.index("high") - done_before
        print(f"\nhigh trigger ran {steps_later} step(s) after it was published, behind a backlog of 300")
        assert steps_later <= 20, f"the high trigger waited {steps_later} steps (the backlog had 300)"
        assert order.count("high") == 1
        assert len(order) < 300, "the whole backlog ran first"
        assert rt.workers[track].source.urgent_fetched == 1  # type: ignore[attr-defined]


async def test_priority_travels_to_downstream_steps(
    settings: Settings, js: JetStreamContext, unique: str
) -> None:
    wf = Workflow(f"carry-{unique}")
    seen: dict[str, str | None] = {}

    @wf.track(f"up-{unique}")
    async def up(ctx: TrackContext, payload: dict[str, int]) -> dict[str, int]:
        seen["up"] = ctx.headers.get(headers.PRIORITY)
        return payload

    @wf.track(f"down-{unique}", after=[f"up-{unique}"])
    async def down(ctx: TrackContext, payload: dict[str, int]) -> dict[str, int]:
        seen["down"] = ctx.headers.get(headers.PRIORITY)
        return payload

    async with Runtime(list(wf), settings=settings):
        client = TracksClient(js)
        await client.start(wf, {"n": 1}, priority="low")
        await eventually(lambda: _has(seen, "down"), timeout=30, what="the downstream step")
    assert seen == {"up": "low", "down": "low"}


async def test_unknown_priority_is_refused(js: JetStreamContext) -> None:
    try:
        await TracksClient(js).trigger("t", {}, priority="urgent!")
    except ValueError as exc:
        assert str(exc) == "priority 'urgent!' must be one of high, normal, low"
    else:
        raise AssertionError("an unknown priority was accepted")


async def _at_least(order: list[str], n: int) -> bool:
    return len(order) >= n


async def _contains(order: list[str], item: str) -> bool:
    return item in order


async def _has(seen: dict[str, str | None], key: str) -> bool:
    return key in seen


def test_lane_names() -> None:
    assert names.trigger("ocr", "c1", "high") == "tracks.ocr.urgent.c1"
    assert names.trigger("ocr", "c1", "low") == names.trigger("ocr", "c1") == "tracks.ocr.run.c1"
    parsed = names.parse("tracks.ocr.urgent.c1")
    assert parsed is not None and (parsed.track, parsed.kind, parsed.correlation_id) == ("ocr", "run", "c1")
    assert names.template("tracks.ocr.urgent.c1") == ("tracks.ocr.urgent", "c1")
    assert names.consumer_track(names.urgent_consumer("ocr")) == names.consumer_track("ocr") == "ocr"
