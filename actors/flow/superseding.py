"""Singleton keys (``on_conflict``): steps a gate marks superseded, and the runs it cancels.

A gate that lets a newer step of a key replace an older one marks the older one here by its
stream sequence; :class:`SupersededMiddleware`, after the claim (the run exists then), stops
such a step: its run is cancelled (recorded, announced) and the chain raises
:class:`StepCancelled`, which settlement records as the step ``cancelled`` and acks, as for any
cancelled run.
"""

from __future__ import annotations

from contextlib import suppress

import asyncpg

from actors.errors import StepCancelled
from actors.ledger.cancel import cancel
from actors.ledger.progress import ProgressError
from actors.middleware.base import Next, Outcome, Step
from foundation.jetstream.publisher import EventPublisher

__all__ = ["SupersededMiddleware", "Superseding"]


class Superseding:
    def __init__(self, pool: asyncpg.Pool, publisher: EventPublisher | None) -> None:
        self._pool = pool
        self._publisher = publisher
        self._marks: dict[int, str] = {}  # stream seq -> why: closed as cancelled by the chain

    def mark(self, seq: int, reason: str) -> None:
        self._marks[seq] = reason

    def take(self, seq: int) -> str | None:
        """Why the step of stream sequence ``seq`` was superseded (once); None: it was not."""
        return self._marks.pop(seq, None)

    async def cancel_run(self, correlation_id: str, reason: str) -> None:
        if self._publisher is None:
            return
        with suppress(ProgressError):  # finished already (or not yet opened): nothing to cancel
            await cancel(self._pool, self._publisher, correlation_id, reason)


class SupersededMiddleware:
    """After the claim: a superseded step does not run; its run is cancelled."""

    def __init__(self, superseding: Superseding) -> None:
        self._superseding = superseding

    async def __call__(self, step: Step, call_next: Next) -> Outcome:
        reason = self._superseding.take(step.ctx.stream_seq)
        if reason is None:
            return await call_next(step)
        await self._superseding.cancel_run(step.ctx.correlation_id, reason)
        step.ctx.mark_cancelled(reason)
        raise StepCancelled(reason)
