"""Around-middleware for one delivery: ``async def __call__(step, call_next)``.

The chain is composed once per track; the first middleware given is the outermost.
Middleware may stop the chain (the ledger does, for a duplicate) or wrap it (a span, a
time limit). None of them acks, naks or publishes: the worker settles the message from
``step.verdict`` and ``step.output`` or the exception that came out of the chain.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.msg import Msg
from opentelemetry import context as otel_context

from .context import TrackContext
from .decode import Activation
from .ledger import LogRow, Verdict
from .track import Track

__all__ = ["Middleware", "Next", "Step", "compose"]


@dataclass
class Step:
    """One delivery on its way through the chain."""

    track: Track
    msg: Msg
    activation: Activation
    ctx: TrackContext
    verdict: Verdict = Verdict.RUN
    trace_context: otel_context.Context | None = None
    """The step's span, for what happens after the chain (settlement publishes in its trace)."""
    claimed_attempt: int | None = None
    """The attempt the ledger granted (``None`` until the claim): fences this step's outcome."""
    input: dict[str, Any] | None = None
    """The handler's input when it is not the message's payload (fan-in: outputs by upstream)."""
    output: dict[str, Any] | None = None
    """The handler's result, or the recorded output of an already completed step."""
    completed_run: str | None = None
    """The workflow whose run this step's outcome completed (its only leaf), to announce."""
    started: float = field(default_factory=time.monotonic)

    def log_row(self, event_type: str, **fields: Any) -> LogRow:
        """A ``processing_logs`` row about this step (its run, track, attempt, trace, message)."""
        ctx = self.ctx
        return LogRow(
            correlation_id=ctx.correlation_id,
            track=ctx.track,
            event_type=event_type,
            attempt=ctx.attempt,
            user_id=ctx.user_id,
            trace_id=ctx.trace_id,
            stream_seq=ctx.stream_seq,
            **fields,
        )


Next = Callable[[Step], Awaitable[None]]


class Middleware(Protocol):
    async def __call__(self, step: Step, call_next: Next) -> None: ...


def compose(middleware: Sequence[Middleware], endpoint: Next) -> Next:
    """Fold ``middleware`` around ``endpoint``; ``middleware[0]`` runs first.

    Each layer is bound by a plain function that returns the middleware's coroutine, not
    by a wrapping coroutine: every await in a step resumes each coroutine of the chain in
    turn, so a wrapper per layer would double that work.
    """
    chain = endpoint
    for mw in reversed(middleware):
        chain = _bind(mw, chain)
    return chain


def _bind(mw: Middleware, call_next: Next) -> Next:
    def call(step: Step) -> Awaitable[None]:
        return mw(step, call_next)

    return call
