"""What becomes of a message once the chain ran: each outcome is durable before the message goes.

- success: ``completed`` recorded (ledger middleware) → completion event → run settled (a leaf) → ack
- the completing message redelivered: its recorded output re-published (same ``Nats-Msg-Id``) → ack
- gated, waiting, closed, superseded or duplicate deliveries: ack (the ledger recorded why)
- retryable failure: ``failed`` attempt recorded → nak with back-off delay
- permanent failure or last delivery: step marked failed (fenced, durable) → dead letter
  acknowledged by the DLQ stream → ``failed`` event → run failed → term
- poison (unusable on arrival): dead letter → ``failed`` record → term
"""

from __future__ import annotations

import logging
import time

from nats.aio.msg import Msg

from subjects import SubjectKind

from .dead_letter import DeadLetter, DeadLetters
from .decode import fallback_correlation_id
from .errors import PoisonMessage
from .ledger import Ledger, LogRow, StepFinish, Verdict
from .middleware import Step
from .plan import StepPlan
from .publisher import EventPublisher
from .retry import RetryPolicy
from .runs import Runs
from .track import Track

__all__ = ["Settlement"]

log = logging.getLogger(__name__)


class Settlement:
    def __init__(
        self,
        track: Track,
        retry: RetryPolicy,
        ledger: Ledger,
        publisher: EventPublisher,
        runs: Runs,
        plan: StepPlan,
        targets: list[str] | None,
    ) -> None:
        self.track = track
        self._retry = retry
        self._ledger = ledger
        self._publisher = publisher
        self._dead_letters = DeadLetters(publisher)
        self._runs = runs
        self._plan = plan
        self._targets = targets

    async def success(self, step: Step) -> None:
        """Completed (or re-announced): publish, settle the run if this was a leaf, ack.

        Gated, waiting, closed and duplicate deliveries are simply acked: the ledger recorded
        why, and the step is re-activated by ``proceed`` / the last upstream / ``resume``.
        """
        if step.verdict in (Verdict.RUN, Verdict.ALREADY_DONE):
            ctx = step.ctx
            await self._publisher.track_event(
                self.track.name,
                SubjectKind.COMPLETED,
                ctx.correlation_id,
                step.output or {},
                user_id=ctx.user_id,
                workflow=ctx.workflow,
                targets=self._targets,
            )
            if step.completed_run is not None:  # the workflow's only leaf completed the run
                await self._runs.announce_completed(step.completed_run, ctx.correlation_id, step.output)
            elif self._plan.leaves and (len(self._plan.leaves) > 1 or step.verdict is Verdict.ALREADY_DONE):
                await self._runs.leaf_completed(ctx.correlation_id, self._plan.leaves)
        await step.msg.ack()

    async def failure(self, step: Step, exc: Exception) -> None:
        policy, ctx, msg = self._retry, step.ctx, step.msg
        deliveries = ctx.deliveries
        error = f"{type(exc).__name__}: {exc}"
        permanent = policy.is_permanent(exc)
        if not permanent and not policy.exhausted(deliveries):
            delay = policy.delay_s(deliveries, exc)
            self._ledger.record(
                self._row(
                    step,
                    "failed",
                    error,
                    exc,
                    {"willRetry": True, "retryInS": round(delay, 3), "deliveries": deliveries},
                )
            )
            log.info(
                "%s %s attempt %d failed (%s); retry in %.1fs",
                self.track.name,
                ctx.correlation_id,
                ctx.attempt,
                error,
                delay,
            )
            await msg.nak(delay)
            return
        # The (fenced) failure first: a replica that lost the step to another must not dead-letter it.
        details: dict[str, object] = {"deadLettered": True, "permanent": permanent, "deliveries": deliveries}
        written = await self._ledger.finish(
            StepFinish("failed", self._row(step, "failed", error, exc, details), fence=step.claimed_attempt)
        )
        if not written.applied:
            log.warning(
                "%s %s: failure of a step another replica took over; not dead-lettered",
                self.track.name,
                ctx.correlation_id,
            )
            await msg.ack()
            return
        first_failure = await self._ledger.first_failure(ctx.correlation_id, self.track.name)
        await self._dead_letters.send(
            msg,
            DeadLetter(
                self.track.name,
                ctx.correlation_id,
                type(exc).__name__,
                str(exc),
                deliveries,
                DeadLetters.format_traceback(exc),
                first_failure,
            ),
        )
        await self._publisher.track_event(
            self.track.name,
            SubjectKind.FAILED,
            ctx.correlation_id,
            {"error": str(exc), "errorType": type(exc).__name__},
            user_id=ctx.user_id,
            workflow=ctx.workflow,
        )
        if self._plan.workflow is not None:
            await self._runs.fail(ctx.correlation_id, self.track.name, error)
        log.warning(
            "%s %s dead-lettered after %d deliveries: %s",
            self.track.name,
            ctx.correlation_id,
            deliveries,
            error,
        )
        await msg.term()

    async def poison(self, msg: Msg, exc: PoisonMessage) -> None:
        """Unusable on arrival: straight to the DLQ, a ``failed`` record, never redelivered."""
        meta = msg.metadata
        cid = fallback_correlation_id(msg.subject, msg.headers, meta.sequence.stream)
        await self._dead_letters.send(
            msg, DeadLetter(self.track.name, cid, "PoisonMessage", str(exc), meta.num_delivered)
        )
        await self._ledger.record_durably(
            LogRow(
                correlation_id=cid,
                track=self.track.name,
                event_type="failed",
                attempt=meta.num_delivered,
                error=str(exc),
                error_type="PoisonMessage",
                stream_seq=meta.sequence.stream,
                details={"deadLettered": True, "permanent": True, "subject": msg.subject},
            )
        )
        log.warning("%s: poison message on %s dead-lettered: %s", self.track.name, msg.subject, exc)
        await msg.term()

    @staticmethod
    def _row(step: Step, event_type: str, error: str, exc: Exception, details: dict[str, object]) -> LogRow:
        return step.log_row(
            event_type,
            error=error,
            error_type=type(exc).__name__,
            duration_ms=(time.monotonic() - step.started) * 1000,
            details=details,
        )
