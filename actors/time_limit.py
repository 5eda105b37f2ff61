"""Cancel a handler that runs past its time limit; the step counts as a retryable failure."""

from __future__ import annotations

import asyncio

from .errors import RetryableError
from .middleware import Next, Step

__all__ = ["StepTimeout", "TimeLimitMiddleware"]


class StepTimeout(RetryableError):
    pass


class TimeLimitMiddleware:
    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s

    async def __call__(self, step: Step, call_next: Next) -> None:
        try:
            async with asyncio.timeout(self.limit_s):
                await call_next(step)
        except TimeoutError:
            raise StepTimeout(
                f"handler of {step.track.name} exceeded its {self.limit_s:g}s time limit"
            ) from None
