"""Claim the step in the ledger before the handler runs; say why when it may not run.

The claim is the only thing this middleware writes: the step's outcome (``completed`` with
its output, or ``failed``) is made durable by :mod:`actors.runtime.settlement`, from the value the
chain returns. Every verdict other than RUN stops the chain here with a :class:`Skipped`.
"""

from __future__ import annotations

import logging

from actors.ledger.execution_chain import started_details
from actors.ledger.plan import StepPlan
from actors.ledger.store import Claim, Ledger, Verdict
from actors.middleware.base import Next, Outcome, Skipped, Step
from actors.middleware.tracing import join_run

__all__ = ["LedgerMiddleware"]

log = logging.getLogger(__name__)

_REASONS = {
    Verdict.ALREADY_DONE: "step already completed: its output is re-announced",
    Verdict.COMPLETED_BEFORE: "step already completed",
    Verdict.DUPLICATE: "step claimed by another message",
    Verdict.CLOSED: "the run timed out: resume it to continue",
}
_CANCELLED = "the run was cancelled: nothing more of it starts"


class LedgerMiddleware:
    def __init__(self, ledger: Ledger, plan: StepPlan, *, max_tries: int = 1_000_000) -> None:
        self._ledger = ledger
        self._plan = plan
        self._max_tries = max_tries

    async def __call__(self, step: Step, call_next: Next) -> Outcome:
        ctx, plan, activation = step.ctx, self._plan, step.activation
        result = await self._ledger.claim(
            Claim(
                ctx.correlation_id,
                ctx.track,
                ctx.stream_seq,
                ctx.workflow,
                ctx.user_id,
                ctx.trace_id,
                started_details=started_details(
                    ctx.track,
                    ctx.correlation_id,
                    step.msg.subject,
                    activation.source_track,
                    activation.payload,
                ),
                fan_in=plan.fan_in,
                root=plan.root,
                gate=plan.gate,
                run_timeout_s=plan.run_timeout_s,
                definition=plan.definition,
                source=activation.source_track,
                max_tries=self._max_tries,
                trace_context=step.traceparent,
                linked=plan.linked,
            )
        )
        step.claim = result
        if result.run_trace is not None or result.causes:
            join_run(step, result)  # before the handler: its spans and events follow the step's
        if result.verdict is not Verdict.RUN:
            self._note(step, result.verdict, cancelled=result.run_status == "cancelled")
            return Skipped(result.verdict, result.output)
        ctx.attempt = result.attempt
        if result.inputs is not None:  # fan-in: every upstream's recorded output, by track
            ctx.upstream = result.inputs
        return await call_next(step)

    def _note(self, step: Step, verdict: Verdict, *, cancelled: bool = False) -> None:
        """Say in the records why the handler did not run (gated steps are recorded by the claim)."""
        reason = _CANCELLED if cancelled else _REASONS.get(verdict)
        if reason is not None:
            event = "skipped" if verdict is Verdict.CLOSED else "duplicate"
            self._ledger.record(step.log_row(event, details={"reason": reason, "subject": step.msg.subject}))
