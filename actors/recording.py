"""Claim the step in the ledger, record ``started``, and make ``completed`` durable.

``completed`` (with the output) is durable before the worker publishes the completion
event and acks: a crash in between leaves a completed step whose redelivery re-announces
the recorded output instead of running the handler again.
"""

from __future__ import annotations

import time

from .ledger import Claim, Ledger, LogRow, StepFinish, Verdict
from .middleware import Next, Step

__all__ = ["LedgerMiddleware"]


class LedgerMiddleware:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def __call__(self, step: Step, call_next: Next) -> None:
        ctx = step.ctx
        result = await self._ledger.claim(Claim(
            ctx.correlation_id, ctx.track, ctx.stream_seq, ctx.workflow, ctx.user_id, ctx.trace_id,
            started_details={"subject": step.msg.subject, "source": step.activation.source_track,
                             "payload": step.activation.payload},
        ))
        step.verdict = result.verdict
        if result.verdict is not Verdict.RUN:
            step.output = result.output
            reason = "step already completed" if result.verdict is Verdict.ALREADY_DONE else "step claimed by another message"
            self._ledger.record(self._row(step, "duplicate", details={"reason": reason, "subject": step.msg.subject}))
            return
        ctx.attempt = result.attempt
        began = time.monotonic()
        await call_next(step)
        duration_ms = (time.monotonic() - began) * 1000
        # details=None: the ledger stores the output once as the row's {"payload": ...}
        await self._ledger.finish(
            StepFinish("completed", self._row(step, "completed", duration_ms=duration_ms), output=step.output)
        )

    @staticmethod
    def _row(step: Step, event_type: str, **fields: object) -> LogRow:
        ctx = step.ctx
        return LogRow(
            correlation_id=ctx.correlation_id, track=ctx.track, event_type=event_type, attempt=ctx.attempt,
            user_id=ctx.user_id, trace_id=ctx.trace_id, stream_seq=ctx.stream_seq, **fields,  # type: ignore[arg-type]
        )
