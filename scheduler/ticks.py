"""Firing ticks: claim the tick's row, publish the run command, record every decision.

Also what happens when a run ends: a queued tick of the same schedule is released, and runs
that outlived their timeout are failed by a periodic sweep.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from foundation.backoff import Backoff
from foundation.group_commit import GroupCommit
from scheduler.executions import Claim, Decision, ExecutionStore, Finished
from scheduler.metrics import tick_counted
from scheduler.misfire import MisfirePlan
from scheduler.publisher import TickPublisher, message_id
from scheduler.schedules import Schedule

__all__ = ["TickFirer", "TickStats"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class TickStats:
    published: int = 0
    duplicates: int = 0
    """Ticks another replica had already published (JetStream de-duplicated ours)."""
    skipped: int = 0
    queued: int = 0
    released: int = 0
    publish_failures: int = 0
    timeouts: int = 0
    lateness_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    """Publish acknowledged minus scheduled fire time, per published tick."""


class TickFirer:
    def __init__(
        self,
        executions: ExecutionStore,
        publisher: TickPublisher,
        *,
        follow_s: float,
        publish_attempts: int = 3,
        publish_give_up_s: float = 20.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._executions = executions
        self._publisher = publisher
        # Ticks due together are claimed in one statement (one commit for a burst, not one per
        # tick); two batches may run side by side: each sorts its ticks into the one lock order.
        self._claims: GroupCommit[tuple[Schedule, datetime, str], Claim] = GroupCommit(
            lambda ticks: executions.claim_many(ticks, follow_s=follow_s),
            name="tick-claims",
            max_batch=500,
            parallel=2,
        )
        self._attempts = publish_attempts
        # a JetStream cluster electing a new stream leader answers "no responders" meanwhile (its
        # Raft waits 4-9 s before campaigning): a tick is retried (same Nats-Msg-Id, so once)
        # for one full election and a second round, within follow_s
        self._give_up_s = min(publish_give_up_s, follow_s)
        self._clock = clock
        self.stats = TickStats()

    def start(self) -> None:
        self._claims.start()

    async def close(self, timeout_s: float = 10.0) -> None:
        await self._claims.close(timeout_s)

    async def apply(self, schedule: Schedule, plan: MisfirePlan) -> None:
        """Record the plan's skips, then fire its tick (if any)."""
        if plan.skips:
            skipped = await self._executions.record_skips(schedule, plan.skips)
            self.stats.skipped += skipped
            tick_counted(schedule.name, "skipped", skipped)
            log.info("%s: skipped %d tick(s) (%s)", schedule.name, len(plan.skips), plan.skips[-1].reason)
        if plan.fire is not None:
            await self.fire(schedule, plan.fire)

    async def fire(self, schedule: Schedule, scheduled_for: datetime) -> Decision:
        claim = await self._claims.enqueue((schedule, scheduled_for, uuid.uuid4().hex))
        if claim.decision is Decision.PUBLISH:
            await self.publish(schedule, scheduled_for, claim.correlation_id)
        elif claim.decision is Decision.SKIPPED:
            self.stats.skipped += 1
            tick_counted(schedule.name, "skipped")
            log.info("%s: tick %s skipped: %s", schedule.name, scheduled_for.isoformat(), claim.reason)
        elif claim.decision is Decision.QUEUED:
            self.stats.queued += 1
            tick_counted(schedule.name, "queued")
            log.info("%s: tick %s queued: %s", schedule.name, scheduled_for.isoformat(), claim.reason)
        return claim.decision

    async def publish(self, schedule: Schedule, scheduled_for: datetime, correlation_id: str) -> None:
        """Publish with retries (at least ``publish_attempts``, for up to ``publish_give_up_s``);
        a tick that cannot be published is recorded as failed."""
        error: Exception | None = None
        backoff = Backoff(first_s=0.25)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._give_up_s
        attempts = 0
        while True:
            attempts += 1
            try:
                published = await self._publisher.publish(schedule, scheduled_for, correlation_id)
            except Exception as exc:  # NATS down or slow: retry (same Nats-Msg-Id), then record it
                error = exc
                if attempts < self._attempts or loop.time() + backoff.peek() < deadline:
                    await asyncio.sleep(backoff.next())
                    continue
                break
            if published.duplicate:
                self.stats.duplicates += 1
                tick_counted(schedule.name, "duplicate")
            else:
                self.stats.published += 1
                tick_counted(schedule.name, "published")
                self.stats.lateness_ms.append((self._clock() - scheduled_for).total_seconds() * 1000)
            return
        self.stats.publish_failures += 1
        tick_counted(schedule.name, "publish_failed")
        log.error(
            "%s: could not publish %s: %s", schedule.name, message_id(schedule.name, scheduled_for), error
        )
        finished = await self._executions.finish(
            correlation_id, "failed", error=f"tick not published after {attempts} attempts: {error}"
        )
        if finished is not None:
            await self.release(schedule)

    async def release(self, schedule: Schedule) -> None:
        """After a run of ``schedule`` ended: publish its queued tick, if one waits and nothing runs."""
        released = await self._executions.release_queued(schedule.id)
        if released is not None:
            self.stats.released += 1
            tick_counted(schedule.name, "released")
            log.info("%s: releasing queued tick %s", schedule.name, released.scheduled_for.isoformat())
            await self.publish(schedule, released.scheduled_for, released.correlation_id)

    async def sweep_timeouts(self, default_timeout_s: float) -> list[Finished]:
        timed_out = await self._executions.sweep_timeouts(default_timeout_s)
        self.stats.timeouts += len(timed_out)
        for finished in timed_out:
            log.warning("execution %s timed out", finished.correlation_id)
        return timed_out
