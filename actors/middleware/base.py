"""Around-middleware for one delivery: ``async def __call__(step, call_next) -> Outcome``.

The chain is composed once per track; the first middleware given is the outermost. It
returns an :data:`Outcome` value — the handler ran (:class:`Completed`), or the ledger
said why it must not (:class:`Skipped`) — or raises. None of the middleware acks, naks,
publishes or records an outcome: :mod:`actors.runtime.settlement` is the one place that does, from
the value (or the exception) that came out of the chain.

``Step`` carries what the chain learns on the way, each field written by one owner: the
tracing middleware sets ``trace_context``, the ledger middleware sets ``claim``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.msg import Msg
from opentelemetry import context as otel_context

from actors.context import TrackContext
from actors.ledger.store import ClaimResult, LogRow, Verdict
from actors.track import Track
from actors.transport.decode import Activation

__all__ = ["Completed", "Middleware", "Next", "Outcome", "Skipped", "Step", "compose"]


@dataclass(frozen=True)
class Completed:
    """The handler returned ``output`` (already offloaded when large); not yet durable."""

    output: dict[str, Any] | None


@dataclass(frozen=True)
class Skipped:
    """The ledger did not let the handler run, and said why (``verdict``).

    ``output`` is the recorded output of a completed step (``ALREADY_DONE``: re-announce it).
    """

    verdict: Verdict
    output: dict[str, Any] | None = None


Outcome = Completed | Skipped


@dataclass
class Step:
    """One delivery on its way through the chain."""

    track: Track
    msg: Msg
    activation: Activation
    ctx: TrackContext
    trace_context: otel_context.Context | None = None
    """The step's span (set by the tracing middleware): settlement publishes in its trace."""
    traceparent: str | None = None
    """The step's span as a W3C ``traceparent`` (set by the tracing middleware): the claim keeps it."""
    claim: ClaimResult | None = None
    """What the ledger granted (set by the ledger middleware): its attempt fences the outcome."""
    started: float = field(default_factory=time.monotonic)

    @property
    def fence(self) -> int | None:
        return self.claim.attempt if self.claim is not None else None

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


Next = Callable[[Step], Awaitable[Outcome]]


class Middleware(Protocol):
    async def __call__(self, step: Step, call_next: Next) -> Outcome: ...


def compose(middleware: Sequence[Middleware], endpoint: Next, *, tolerant: int = 0) -> Next:
    """Fold ``middleware`` around ``endpoint``; ``middleware[0]`` runs first.

    Each layer is bound by a plain function that returns the middleware's coroutine, not
    by a wrapping coroutine: every await in a step resumes each coroutine of the chain in
    turn, so a wrapper per layer would double that work.

    The last ``tolerant`` layers (users' own middleware) may forget to return what
    ``call_next`` returned: their chain's outcome is kept for them.
    """
    chain = endpoint
    for i, mw in enumerate(reversed(middleware)):
        chain = _bind_tolerant(mw, chain) if i < tolerant else _bind(mw, chain)
    return chain


def _bind(mw: Middleware, call_next: Next) -> Next:
    def call(step: Step) -> Awaitable[Outcome]:
        return mw(step, call_next)

    return call


def _bind_tolerant(mw: Middleware, call_next: Next) -> Next:
    async def call(step: Step) -> Outcome:
        seen: list[Outcome] = []

        async def inner(s: Step) -> Outcome:
            outcome = await call_next(s)
            seen.append(outcome)
            return outcome

        outcome = await mw(step, inner)
        if outcome is None and seen:  # a middleware written before the chain returned outcomes
            return seen[-1]
        return outcome

    return call
