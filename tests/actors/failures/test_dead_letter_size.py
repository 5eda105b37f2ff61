"""Dead letters of messages near the server's max_payload: the dead letter adds its headers, so the
original body goes to the payload store by reference; the connection stays up and nothing is lost."""

from __future__ import annotations

import json

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actors import PermanentError, Runtime, TrackContext, Workflow
from actors.failures import dlq_ops as letters
from actors.ledger.store import Ledger
from foundation.settings import Settings
from tests.support.records import stream_subjects
from tests.support.waiting import eventually


async def test_a_failing_trigger_at_max_payload_is_dead_lettered_by_reference_and_replays(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str
) -> None:
    track = f"{unique}-big"
    wf = Workflow(f"wf-{unique}")
    refuse = {"on": True}

    @wf.track(track)
    async def big(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        if refuse["on"]:
            raise PermanentError(f"refused: {str(payload)[:5000]}")  # echoes input: bounded on the wire
        return {"size": len(str(payload.get("x", "")))}

    limit = nc.max_payload
    body = json.dumps({"x": "x" * (limit - 300)}).encode()[: limit - 300]
    body = body[:-2] + b'"}'
    junk = b"x" * (limit - 300)  # not JSON: poison
    async with Runtime(list(wf), settings=settings) as runtime:
        await js.publish(f"tracks.{track}.run.{unique}-json", body)
        await js.publish(f"tracks.{track}.run.{unique}-junk", junk)

        async def both_dead() -> bool:
            return len(await stream_subjects(js, "DLQ", f"dlq.{track}.*")) == 2

        await eventually(both_dead, timeout=30, what="two dead letters")
        assert runtime.nc is not None and runtime.nc.is_connected
        found = {letter.correlation_id: letter async for letter in letters.letters(js, track)}
        for cid, original in ((f"{unique}-json", body), (f"{unique}-junk", junk)):
            letter = found[cid]
            assert letter.data == b"" and letter.body_ref is not None
            assert await letters.original_body(js, letter) == original
        assert found[f"{unique}-junk"].error_type == "PoisonMessage"
        assert len(found[f"{unique}-json"].headers["Tracks-Error"]) <= 1000

        refuse["on"] = False
        ledger = Ledger(pool)
        ledger.start()
        try:
            await letters.Replayer(js, pool, ledger).replay(found[f"{unique}-json"].seq)
        finally:
            await ledger.close()

        async def replayed() -> bool:
            status = await pool.fetchval(
                "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2",
                f"{unique}-json",
                track,
            )
            return status == "completed"

        await eventually(replayed, timeout=30, what="the replayed big trigger to complete")
        assert runtime.nc.is_connected
