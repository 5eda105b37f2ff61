"""The failure-handling issue's scenarios with its own numbers: 4 failures then success (5 attempts,
growing delays), and an always-failing handler dead-lettered after the default 5 deliveries."""

from __future__ import annotations

import collections

from actors import Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from tests.support.waiting import eventually


async def test_four_failures_then_success_with_growing_delays(settings, pool, nc, unique):
    a, b = f"{unique}-flaky", f"{unique}-next"
    calls: collections.Counter[str] = collections.Counter()
    wf = Workflow(f"{unique}-retries")

    @wf.track(a, options=TrackOptions(retry_base_s=0.05, retry_cap_s=5))
    async def flaky(ctx: TrackContext, payload: dict) -> dict:
        calls[ctx.correlation_id] += 1
        if calls[ctx.correlation_id] <= 4:
            raise ConnectionError(f"upstream API unavailable (attempt {ctx.attempt})")
        return {"ok": True}

    @wf.track(b, after=[a])
    async def after(ctx: TrackContext, payload: dict) -> dict:
        return payload

    async with Runtime(list(wf), settings=settings):
        result = await TracksClient(nc).run(wf, {}, timeout=30, correlation_id=f"{unique}-r")
    assert result == {"ok": True}
    rows = await pool.fetch(
        "SELECT event_type, attempt, details FROM processing_logs "
        "WHERE correlation_id = $1 AND track_id = $2 ORDER BY id",
        f"{unique}-r",
        a,
    )
    assert [(r["event_type"], r["attempt"]) for r in rows] == [
        *[(e, n) for n in range(1, 5) for e in ("started", "failed")],
        ("started", 5),
        ("completed", 5),
    ]
    delays = [r["details"]["retryInS"] for r in rows if r["event_type"] == "failed"]
    assert delays == sorted(delays)
    assert delays[-1] > 2 * delays[0]  # exponential: 0.05, 0.1, 0.2, 0.4 (less up to 20 % jitter)


async def test_always_failing_is_dead_lettered_after_five_deliveries(settings, pool, js, unique):
    track = f"{unique}-broken"
    wf = Workflow(f"{unique}-dead")

    @wf.track(track, options=TrackOptions(retry_base_s=0.02, retry_cap_s=0.05))
    async def broken(ctx: TrackContext, payload: dict) -> dict:
        raise RuntimeError("the bookkeeping API rejects this entry")

    async with Runtime(list(wf), settings=settings):
        assert settings.max_deliver == 5
        cid, _ = await TracksClient(js).trigger(track, {"entry": 1})

        async def dead() -> bool:
            return (
                await pool.fetchval(
                    "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, track
                )
                == "failed"
            )

        await eventually(dead, timeout=30, what="the dead letter")
    failed = await pool.fetch(
        "SELECT attempt, details FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
        "AND event_type = 'failed' ORDER BY id",
        cid,
        track,
    )
    assert [r["attempt"] for r in failed] == [1, 2, 3, 4, 5]  # every attempt recorded
    assert failed[-1]["details"]["deadLettered"] is True
    letter = await js.get_last_msg("DLQ", f"dlq.{track}.{cid}")
    assert letter.headers["Tracks-Deliveries"] == "5"
    assert "rejects this entry" in letter.headers["Tracks-Error"]
