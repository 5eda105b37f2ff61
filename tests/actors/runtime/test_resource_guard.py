"""The resource guard: CPU over its threshold pauses fetching (and resumes), memory over it stops cleanly."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TracksClient, Workflow
from foundation.settings import Settings
from subjects.alerts import AlertEnvelope
from tests.support.scheduling import published
from tests.support.waiting import count_logs, eventually


def _echo(name: str) -> Workflow:
    wf = Workflow(f"guard-{name}")

    @wf.track(name)
    async def echo(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    return wf


async def _alerts(js: JetStreamContext, kind: str, instance: str) -> list[AlertEnvelope]:
    found = [
        AlertEnvelope.model_validate(json.loads(m.data)) for m in await published(js, f"tracks.alerts.{kind}")
    ]
    return [a for a in found if a.labels.get("instance") == instance]


async def test_cpu_over_threshold_pauses_fetching_until_lifted(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    track = f"{unique}-cpu"
    guarded = settings.model_copy(
        update={
            "guard_cpu_percent": 0.0,
            "guard_cpu_for_s": 0.2,
            "guard_interval_s": 0.05,
            "fetch_timeout_s": 0.2,
        }
    )
    async with Runtime(list(_echo(track)), settings=guarded) as rt:
        guard = rt.guard
        assert guard is not None
        await eventually(lambda: _true(guard.paused and rt.workers[track].paused), timeout=10, what="paused")
        # the pause takes effect once the fetch under way ends (one fetch timeout at most)
        await asyncio.sleep(0.6)
        await TracksClient(js).trigger(track, {"n": 1})
        await asyncio.sleep(1.0)
        assert await count_logs(pool, track, "completed") == 0, "a paused track fetched new work"

        guard.cpu_percent = None  # lifted: the next sample is below any threshold
        await eventually(lambda: _true(not rt.workers[track].paused), timeout=5, what="resumed")
        await eventually(lambda: _completed(pool, track), timeout=10, what="the held-back trigger ran")
        instance = guard.alerts[0].labels["instance"]
        alerts = await _alerts(js, "resource_cpu", instance)
        assert [a.ends_at is None for a in alerts] == [True, False]
        assert alerts[0].severity == "warning" and "paused fetching" in alerts[0].summary
        assert alerts[0].details["cpuThreshold"] == 0.0 and alerts[0].details["tracks"] == [track]
        assert alerts[1].starts_at == alerts[0].starts_at  # the same alert, ended


async def test_memory_over_threshold_stops_the_actor_cleanly(
    settings: Settings, migrated: None, js: JetStreamContext, unique: str
) -> None:
    track = f"{unique}-mem"
    guarded = settings.model_copy(update={"guard_memory_mb": 1.0, "guard_interval_s": 0.05})
    async with Runtime(list(_echo(track)), settings=guarded) as rt:
        await asyncio.wait_for(rt.serve(), 10)  # returns (no exception): stopped as on SIGTERM
        guard = rt.guard
        assert guard is not None and guard.stopped and rt.stopping
    [alert] = await _alerts(js, "resource_memory", guard.alerts[0].labels["instance"])
    assert alert.severity == "critical"
    assert "TRACKS_GUARD_MEMORY_MB=1" in alert.summary
    assert alert.details["rssBytes"] > 1_000_000


def test_guard_is_off_by_default(settings: Settings) -> None:
    assert settings.guard_cpu_percent is None and settings.guard_memory_mb is None


async def _true(value: bool) -> bool:
    return value


async def _completed(pool: asyncpg.Pool, track: str) -> bool:
    return await count_logs(pool, track, "completed") >= 1
