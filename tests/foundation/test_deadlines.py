"""The shared deadline timer behind step time limits and PubAck waits (no servers needed)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from actors.middleware.time_limit import StepTimeout, TimeLimitMiddleware
from foundation.jetstream.timers import TICK_S, Deadlines

pytestmark = pytest.mark.asyncio


class _Step:
    class track:
        name = "t"


async def _limited(limit_s: float, body: Any) -> None:
    async def call_next(step: Any) -> None:
        await body()

    await TimeLimitMiddleware(limit_s)(_Step(), call_next)  # type: ignore[arg-type]


async def test_a_step_past_its_limit_fails_with_step_timeout_within_a_tick() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(StepTimeout, match=r"exceeded its 0\.1s time limit"):
        await _limited(0.1, lambda: asyncio.sleep(10))
    assert 0.1 <= loop.time() - began < 0.1 + 4 * TICK_S
    assert Deadlines.current().armed == 0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_step_within_its_limit_is_untouched_and_leaves_nothing_armed() -> None:
    for _ in range(100):
        await _limited(5, lambda: asyncio.sleep(0))
    assert Deadlines.current().armed == 0


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    task = asyncio.create_task(_limited(5, lambda: asyncio.sleep(10)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert Deadlines.current().armed == 0


async def test_shutdown_and_deadline_together_stay_a_cancellation() -> None:
    """Like asyncio.timeout: when the task was also cancelled from outside, that one wins."""

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # cleanup that outlives the limit...
            raise

    task = asyncio.create_task(_limited(0.1, slow))
    await asyncio.sleep(0.15)  # ...the deadline fired; now shutdown cancels as well
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_handler_that_swallows_the_cancellation_finishes_and_the_task_is_not_left_cancelling() -> (
    None
):
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)

    await _limited(0.05, stubborn)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_future_past_its_deadline_is_cancelled_and_flagged() -> None:
    deadlines = Deadlines.current()
    slow: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    quick: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    d_slow, d_quick = deadlines.arm(slow, 0.05), deadlines.arm(quick, 0.05)
    quick.set_result(1)
    deadlines.disarm(d_quick)
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert d_slow.fired and not d_quick.fired
    assert deadlines.armed == 0


async def test_each_event_loop_has_its_own_timer() -> None:
    mine = Deadlines.current()

    def other() -> Deadlines:
        return asyncio.run(_current())

    async def _current() -> Deadlines:
        return Deadlines.current()

    theirs = await asyncio.to_thread(other)
    assert theirs is not mine and Deadlines.current() is mine
