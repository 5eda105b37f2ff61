"""A tick whose publish meets a JetStream cluster electing a new stream leader ("no responders"
for a few seconds) is retried until the stream answers, not recorded as failed after three quick
tries (the failover test lost a tick a second for ~4 s after each leader kill)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast

from nats.js.errors import NoStreamResponseError

from scheduler.executions import ExecutionStore
from scheduler.publisher import Published, TickPublisher
from scheduler.schedules import Schedule
from scheduler.ticks import TickFirer


class LeaderlessFor:
    """Answers "no responders" for ``seconds``, then acknowledges."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        self.calls = 0

    async def publish(self, schedule: Schedule, scheduled_for: datetime, correlation_id: str) -> Published:
        self.calls += 1
        if time.monotonic() < self.until:
            raise NoStreamResponseError
        return Published("tracks.t.run.cid", 1, duplicate=False)


class Executions:
    def __init__(self) -> None:
        self.finished: list[tuple[str, str, Any]] = []

    async def finish(self, correlation_id: str, status: str, **kwargs: Any) -> None:
        self.finished.append((correlation_id, status, kwargs))


class Named:
    name = "t-retry"


def _firer(publisher: LeaderlessFor, executions: Executions, give_up_s: float) -> TickFirer:
    return TickFirer(
        cast(ExecutionStore, executions),
        cast(TickPublisher, publisher),
        follow_s=60.0,
        publish_give_up_s=give_up_s,
    )


async def test_a_tick_is_retried_through_a_leader_election() -> None:
    publisher, executions = LeaderlessFor(2.0), Executions()
    firer = _firer(publisher, executions, give_up_s=10.0)
    await firer.publish(cast(Schedule, Named()), datetime.now(UTC), "cid")
    assert firer.stats.published == 1 and firer.stats.publish_failures == 0
    assert publisher.calls > 3  # more than the three quick tries that used to give up
    assert executions.finished == []


async def test_a_tick_that_never_gets_an_answer_is_failed_after_the_give_up_time() -> None:
    publisher, executions = LeaderlessFor(60.0), Executions()
    firer = _firer(publisher, executions, give_up_s=1.0)
    started = time.monotonic()
    await firer.publish(cast(Schedule, Named()), datetime.now(UTC), "cid")
    assert time.monotonic() - started < 3.0
    assert firer.stats.publish_failures == 1
    [(cid, status, kwargs)] = executions.finished
    assert (cid, status) == ("cid", "failed")
    assert kwargs["error"].startswith(f"tick not published after {publisher.calls} attempts:")
