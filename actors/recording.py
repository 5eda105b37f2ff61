"""Claim the step in the ledger, record ``started``, and make ``completed`` durable.

``completed`` (with the output) is durable before the worker publishes the completion
event and acks: a crash in between leaves a completed step whose redelivery re-announces
the recorded output instead of running the handler again. Every verdict other than RUN
stops the chain here; the worker settles the message from ``step.verdict``.
"""

from __future__ import annotations

import logging
import time

from .ledger import Claim, Ledger, StepFinish, Verdict
from .middleware import Next, Step
from .plan import StepPlan

__all__ = ["LedgerMiddleware"]

log = logging.getLogger(__name__)


class LedgerMiddleware:
    def __init__(self, ledger: Ledger, plan: StepPlan) -> None:
        self._ledger = ledger
        self._plan = plan

    async def __call__(self, step: Step, call_next: Next) -> None:
        ctx, plan = step.ctx, self._plan
        result = await self._ledger.claim(
            Claim(
                ctx.correlation_id,
                ctx.track,
                ctx.stream_seq,
                ctx.workflow,
                ctx.user_id,
                ctx.trace_id,
                started_details={
                    "subject": step.msg.subject,
                    "source": step.activation.source_track,
                    "payload": step.activation.payload,
                },
                fan_in=plan.fan_in,
                root=plan.root,
                gate=plan.gate,
                run_timeout_s=plan.run_timeout_s,
                definition=plan.definition,
            )
        )
        step.verdict = result.verdict
        if result.verdict is not Verdict.RUN:
            step.output = result.output
            self._note(step, result.verdict)
            return
        ctx.attempt = step.claimed_attempt = result.attempt
        if result.inputs is not None:  # fan-in: every upstream's recorded output, by track
            step.input = result.inputs
            ctx.upstream = result.inputs
        began = time.monotonic()
        await call_next(step)
        duration_ms = (time.monotonic() - began) * 1000
        # details=None: the ledger stores the output once as the row's {"payload": ...}
        written = await self._ledger.finish(
            StepFinish(
                "completed",
                step.log_row("completed", duration_ms=duration_ms),
                output=step.output,
                fence=result.attempt,
                ends_run=plan.leaves == (ctx.track,),
            )
        )
        step.completed_run = written.completed_run
        if not written.applied:
            step.verdict = Verdict.SUPERSEDED
            log.warning(
                "%s %s: attempt %d finished after another replica took the step over; its outcome "
                "is recorded as superseded and not announced",
                ctx.track,
                ctx.correlation_id,
                result.attempt,
            )

    def _note(self, step: Step, verdict: Verdict) -> None:
        """Say in the records why the handler did not run (gated steps are recorded by the claim)."""
        reason = {
            Verdict.ALREADY_DONE: "step already completed: its output is re-announced",
            Verdict.COMPLETED_BEFORE: "step already completed",
            Verdict.DUPLICATE: "step claimed by another message",
            Verdict.CLOSED: "the run timed out: resume it to continue",
        }.get(verdict)
        if reason is not None:
            event = "skipped" if verdict is Verdict.CLOSED else "duplicate"
            self._ledger.record(step.log_row(event, details={"reason": reason, "subject": step.msg.subject}))
