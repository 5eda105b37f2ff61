"""A timed-out run's announcement survives a failed publish: the next reaper round sends it.

Before migration 0016 the reaper marked the run timed out, logged it, and published in three
steps; a publish that failed (NATS away, the process killed in between) was never retried, as
the next round only looked at running runs, and a waiter never learned the outcome.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.api import PubAck

from actors.ledger.runs import Runs
from foundation.jetstream.publisher import EventPublisher


class _FailingOnce(EventPublisher):
    def __init__(self, nc: NATS) -> None:
        super().__init__(nc.jetstream())
        self.failed = 0

    async def publish(
        self, subject: str, body: bytes, hdrs: dict[str, str], *, stream: str | None = None
    ) -> PubAck:
        if self.failed == 0:
            self.failed += 1
            raise ConnectionError("nats is away (injected)")
        return await super().publish(subject, body, hdrs, stream=stream)


async def test_a_failed_timeout_announcement_is_sent_by_the_next_round(
    pool: asyncpg.Pool, nc: NATS, js: object, unique: str
) -> None:
    cid, wf = f"{unique}-late", f"wf-{unique}"
    await pool.execute(
        """INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, deadline)
           VALUES ($1, $2, 'running', now() - interval '1 minute', now() - interval '10 seconds')""",
        cid,
        wf,
    )
    seen: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def on_event(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(json.loads(msg.data))
        got.set()

    sub = await nc.subscribe(f"tracks.workflow.{wf}.timed_out.{cid}", cb=on_event)
    publisher = _FailingOnce(nc)
    runs = Runs(pool, publisher)

    assert await runs.reap_timeouts() == []  # marked and logged, the publish failed
    run = await pool.fetchrow("SELECT status, announced_at FROM workflow_runs WHERE correlation_id = $1", cid)
    assert run is not None and run["status"] == "timed_out" and run["announced_at"] is None
    assert await runs.reap_timeouts() == []  # too young to be taken for another reaper's

    await pool.execute(  # a few seconds later
        "UPDATE workflow_runs SET finished_at = now() - interval '6 seconds' WHERE correlation_id = $1", cid
    )
    assert await runs.reap_timeouts() == [cid]
    await asyncio.wait_for(got.wait(), 5)
    assert seen[0]["payload"]["outcome"] == "timed_out"
    assert await pool.fetchval(
        "SELECT announced_at IS NOT NULL FROM workflow_runs WHERE correlation_id = $1", cid
    )
    assert await runs.reap_timeouts() == []  # announced: not again
    logged = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE correlation_id = $1 AND event_type = 'timed_out'", cid
    )
    assert logged == 1
    await sub.unsubscribe()
