"""Cancel a handler that runs past its time limit; the step counts as a retryable failure."""

from __future__ import annotations

import asyncio

from actors.errors import RetryableError
from actors.middleware.base import Next, Outcome, Step
from foundation.jetstream.timers import Deadlines

__all__ = ["StepTimeout", "TimeLimitMiddleware"]


class StepTimeout(RetryableError):
    pass


class TimeLimitMiddleware:
    """Like ``asyncio.timeout`` around the rest of the chain, on the loop's shared deadline timer.

    A cancellation that did not come from the deadline (shutdown) goes on as a cancellation.
    """

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s

    async def __call__(self, step: Step, call_next: Next) -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        deadlines = Deadlines.current()
        deadline = deadlines.arm(task, self.limit_s)
        uncancelled = False
        try:
            return await call_next(step)
        except asyncio.CancelledError:
            if deadline.fired:
                uncancelled = True
                if task.uncancel() == 0:
                    raise StepTimeout(
                        f"handler of {step.track.name} exceeded its {self.limit_s:g}s time limit"
                    ) from None
            raise
        finally:
            deadlines.disarm(deadline)
            if deadline.fired and not uncancelled:  # the handler swallowed the cancellation
                task.uncancel()
