"""After a burst, an idle actor holds nothing of its messages: no claims, outcomes or log rows."""

from __future__ import annotations

import gc

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actors import Runtime
from actors.ledger.store import Claim, LogRow, StepFinish
from foundation.idle_trim import trimmer
from foundation.settings import Settings
from tests.support.apps.actor_app import build_workflow, track_names
from tests.support.waiting import chain_settled

BURST = 600


def _held(prefix: str) -> dict[str, int]:
    """Ledger items of this test's runs still referenced from anywhere (cycles collected first)."""
    gc.collect()
    held: dict[str, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, Claim | LogRow | StepFinish):
            cid = obj.row.correlation_id if isinstance(obj, StepFinish) else obj.correlation_id
            if cid.startswith(prefix):
                held[type(obj).__name__] = held.get(type(obj).__name__, 0) + 1
    return held


async def test_an_idle_actor_keeps_nothing_of_a_burst(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str
) -> None:
    """Every step's claim carries its payload and every outcome its output; a group-commit writer
    that kept its last batch while waiting for the next held up to ``records_batch`` of them
    (payloads, outputs and futures' results) for as long as the actor stayed idle."""
    work, after = track_names(f"burst-{unique}")
    prefix = f"burst-{unique}-"
    runtime = Runtime(list(build_workflow(f"burst-{unique}")), settings=settings)
    async with runtime:
        for i in range(BURST):
            await nc.publish(f"tracks.{work}.run.{prefix}{i}", b'{"n": %d}' % i)
        await nc.flush()
        await chain_settled(pool, js, [work, after], BURST, timeout=120)
        held = _held(prefix)
        assert not held, f"an idle actor still references {held} of the burst's steps"
        assert runtime.idle_trim is not None
        assert runtime.idle_trim.available == (trimmer() is not None)
