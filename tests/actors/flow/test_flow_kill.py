"""A replica SIGKILLed while it holds a slot: the slot comes back within ack_wait."""

from __future__ import annotations

import json
import time
from pathlib import Path

import asyncpg
import pytest
from nats.js import JetStreamContext

from actors import Runtime
from foundation.settings import Settings
from subjects import names
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.apps.flow_app import build
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("migrated")]  # runs and kills an actor process


async def test_a_killed_replica_gives_its_slot_back_within_ack_wait(
    servers: Servers,
    settings: Settings,
    pool: asyncpg.Pool,
    js: JetStreamContext,
    unique: str,
    tmp_path: Path,
) -> None:
    track, ack_wait = f"{unique}-slot", 2.0
    env = {
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
        "TRACKS_TEST_PREFIX": unique,
        "TRACKS_ACK_WAIT_S": str(ack_wait),
    }
    first = ActorProcess(["tests.support.apps.flow_app"], env, tmp_path / "first.log")
    first.start()
    try:
        await js.publish(names.run(track, f"{unique}-0"), json.dumps({"n": 0}).encode())

        async def slot_held() -> bool:
            holders = await pool.fetch("SELECT holder FROM flow_leases WHERE name = $1", f"track:{track}")
            return any(f":{first.proc.pid}:" in r["holder"] for r in holders)  # type: ignore[union-attr]

        await eventually(slot_held, timeout=30, what=f"the slot taken; log:\n{first.output()}")
        first.kill()
        killed = time.monotonic()
    finally:
        first.kill()

    async def slot_free() -> bool:
        live = await pool.fetchval(
            "SELECT count(*) FROM flow_leases WHERE name = $1 AND expires_at > clock_timestamp()",
            f"track:{track}",
        )
        return bool(live == 0)

    await eventually(slot_free, timeout=ack_wait + 5, what="the dead replica's slot expired")
    freed_after = time.monotonic() - killed
    print(f"\nslot of a SIGKILLed replica free {freed_after:.2f}s after the kill (ack_wait {ack_wait:g}s)")
    assert freed_after <= ack_wait + 0.5, f"the slot came back {freed_after:.1f}s after the kill"

    # and the step itself comes back to another replica, which takes the slot and finishes it
    tuned = settings.model_copy(update={"ack_wait_s": ack_wait})
    async with Runtime(list(build(unique, 0.0)), settings=tuned):

        async def completed() -> bool:
            status = await pool.fetchval(
                "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2",
                f"{unique}-0",
                track,
            )
            return bool(status == "completed")

        await eventually(completed, timeout=30, what="the step completed by the second replica")
