"""The one owner of a step's outcome: make it durable, publish what follows, then settle.

The middleware chain only decides; this module writes. Every way a delivery can end, and
what is durable before the message goes:

- **completed** (:class:`Completed`): ``completed`` recorded with the output (fenced by the
  claimed attempt) → completion event → the run completed and announced when this was its
  last leaf → ack. The run is announced from its durable state, so a replayed write (lost
  reply) or a redelivery still announces it; ``Nats-Msg-Id`` makes repeats harmless.
- **superseded**: the fenced write found the step on a later attempt (another replica took it
  over while this one stalled) → recorded as ``superseded``, nothing announced, the message
  left alone: it belongs to the attempt that superseded this one (acking it here would settle
  it under that attempt's feet; should that one die too, ack_wait brings it back).
- **already done** (the completing message redelivered): the recorded output re-announced, the
  run checked → ack. Gated, waiting, closed and duplicate deliveries: ack (the ledger recorded why).
- **retry**: a ``failed`` attempt recorded → nak with back-off. Tries are counted by the
  ledger (claims), not by JetStream's delivery count, so hand-backs never use one up.
- **dead letter** (permanent failure, last try, a try that never settled, poison, the
  max-deliveries advisory, the unsettled-step sweep, an unexpected event): all through
  :meth:`DeadLetterDoor.bury`, the one door — the failure recorded (fenced: a replica that
  lost the step does not dead-letter it) → the dead letter, acknowledged by the DLQ stream →
  ``tracks.<track>.failed.<cid>`` when someone may wait for it → the run failed and announced
  → term (by the caller that holds the message).
- **cancelled** (the run was cancelled while the step ran, ``ctx.cancelled``, and the handler
  stopped: raised ``StepCancelled`` or anything else): ``cancelled`` recorded (fenced) → ack;
  nothing announced, nothing retried. A handler that finishes anyway is **completed** as
  above; the claim refuses every step of a cancelled run, so nothing downstream starts. A
  step waiting for a retry when its run was cancelled is closed ``cancelled`` when its message
  comes back (refused by the claim, ``closed``) → ack.
- **hand-back** (fetched but never started: breaker opened, shutdown, look-ahead): nak at once;
  no try is used up because nothing was claimed.
"""

from __future__ import annotations

import logging
import time

from nats.aio.msg import Msg

from actors.errors import PermanentError, PoisonMessage
from actors.failures.dead_letter import DeadLetter, DeadLetters, Original
from actors.failures.door import EXHAUSTED_ERROR, Burial, DeadLetterDoor
from actors.ledger.plan import StepPlan
from actors.ledger.runs import Runs
from actors.ledger.store import Ledger, LogRow, StepFinish, Verdict
from actors.middleware.base import Completed, Outcome, Skipped, Step
from actors.retry import RetryPolicy
from actors.runtime.metrics import StepMetrics
from actors.runtime.priority import carried
from actors.track import Track
from actors.transport.decode import fallback_correlation_id, stored_at_us
from foundation.group_commit import is_transient
from foundation.jetstream.publisher import EventPublisher, bounded
from subjects import SubjectKind, headers

__all__ = ["Settlement", "UnstorableOutput"]

log = logging.getLogger(__name__)


class UnstorableOutput(PermanentError):
    """The handler returned an output the ledger cannot store: dead-lettered, not retried."""


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
        door: DeadLetterDoor,
    ) -> None:
        self.track = track
        self._retry = retry
        self._ledger = ledger
        self._publisher = publisher
        self._runs = runs
        self.dead_letter = door.bury
        self._plan = plan
        self._targets = targets
        self.metrics = StepMetrics(track.name)

    # --- the chain's outcomes ------------------------------------------------------------

    async def settle(self, step: Step, outcome: Outcome) -> None:
        if isinstance(outcome, Completed):
            await self._completed(step, outcome)
        elif isinstance(outcome, Skipped):
            await self._skipped(step, outcome)
        else:  # a user middleware returned something else without running the step
            raise TypeError(f"the middleware chain returned {outcome!r}, not an outcome")

    async def _completed(self, step: Step, outcome: Completed) -> None:
        ctx = step.ctx
        try:
            written = await self._ledger.finish(
                StepFinish(
                    "completed",
                    step.log_row("completed", duration_ms=(time.monotonic() - step.started) * 1000),
                    output=outcome.output,
                    fence=step.fence,
                    ends_run=self._plan.leaves == (ctx.track,),
                )
            )
        except Exception as exc:
            if is_transient(exc):  # never here: the group commit waits outages out
                raise
            # The database refused the output itself (Infinity, nesting jsonb cannot hold, ...):
            # retrying cannot help, and the message must not stay unsettled for ever.
            await self.fail(
                step, UnstorableOutput(f"the handler's output cannot be stored: {type(exc).__name__}: {exc}")
            )
            return
        self.metrics.duration.observe(time.monotonic() - step.started)
        if not written.applied:
            self.metrics.superseded.inc()
            log.warning(
                "%s %s: attempt %d finished after another replica took the step over; its outcome "
                "is recorded as superseded and not announced",
                ctx.track,
                ctx.correlation_id,
                ctx.attempt,
            )
            return
        await self._announce_completed(step, outcome.output, written.completed_run, rechecked=False)
        await step.msg.ack()
        self.metrics.completed.inc()

    async def _skipped(self, step: Step, outcome: Skipped) -> None:
        verdict = outcome.verdict
        if verdict is Verdict.ALREADY_DONE:
            await self._announce_completed(step, outcome.output, None, rechecked=True)
        elif verdict is Verdict.EXHAUSTED:
            ctx = step.ctx
            error = (
                f"the message's last try (attempt {step.fence}) was never settled: the actor was killed "
                "or hung past ack_wait; it is not run again"
            )
            buried = await self.dead_letter(
                self._burial(
                    step, EXHAUSTED_ERROR, error, finish_step=True, details={"via": "exhausted_on_redelivery"}
                )
            )
            if buried:
                log.warning("%s %s dead-lettered: %s", self.track.name, ctx.correlation_id, error)
            await step.msg.term()
            (self.metrics.dead_lettered if buried else self.metrics.superseded).inc()
            return
        elif verdict is Verdict.CLOSED and step.claim is not None and step.claim.attempt:
            # the run was cancelled while this message waited for a retry: its step ends cancelled
            await self._ledger.finish(
                StepFinish(
                    "cancelled",
                    step.log_row("cancelled", details={"reason": "the run was cancelled between tries"}),
                    fence=step.fence,
                )
            )
        elif verdict is Verdict.UNEXPECTED:
            activation = step.activation
            error = (
                f"{step.msg.subject[:200]}: an event of {activation.source_track} for a run in which "
                f"{activation.source_track} never completed (forged or stray); not run"
            )
            await self.dead_letter(
                self._burial(
                    step,
                    "UnexpectedEvent",
                    error,
                    finish_step=False,
                    details={"unexpected": True},
                    announce=False,
                    fail_run=False,
                    ran=False,
                )
            )
            log.warning("%s: %s", self.track.name, error)
            await step.msg.term()
            self.metrics.dead_lettered.inc()
            return
        await step.msg.ack()
        self.metrics.skipped.inc()

    async def _announce_completed(
        self, step: Step, output: dict[str, object] | None, completed_run: str | None, *, rechecked: bool
    ) -> None:
        ctx = step.ctx
        await self._publisher.track_event(
            self.track.name,
            SubjectKind.COMPLETED,
            ctx.correlation_id,
            output or {},
            user_id=ctx.user_id,
            workflow=ctx.workflow,
            targets=self._targets,
            priority=carried(ctx.headers),  # downstream steps run at the run's priority
        )
        if completed_run is not None:  # the workflow's only leaf completed the run (durable)
            await self._runs.announce_completed(completed_run, ctx.correlation_id, output)
        elif self._plan.leaves and (len(self._plan.leaves) > 1 or rechecked):
            await self._runs.leaf_completed(ctx.correlation_id, self._plan.leaves)

    # --- failures ------------------------------------------------------------------------

    async def fail(self, step: Step, exc: Exception) -> None:
        """The chain raised: retry with back-off while tries remain, else the dead-letter door."""
        ctx, msg = step.ctx, step.msg
        error = bounded(f"{type(exc).__name__}: {exc}")
        if ctx.cancelled and step.claim is not None:
            await self._cancelled(step, exc, error)
            return
        permanent = self._retry.is_permanent(exc)
        if step.claim is None and not permanent:
            # Failed before the ledger granted the step (the database refused the claim): no try
            # was used and nothing ran, so nothing is recorded; the message comes back later.
            log.warning("%s %s: not started (%s); handed back", self.track.name, ctx.correlation_id, error)
            await msg.nak(self._retry.delay_s(1))
            self.metrics.handed_back.inc()
            return
        tries = step.claim.tries if step.claim is not None else ctx.deliveries
        if step.claim is not None:
            self.metrics.duration.observe(time.monotonic() - step.started)
        if not permanent and not self._retry.exhausted(tries):
            delay = self._retry.delay_s(tries, exc)
            retry: dict[str, object] = {
                "willRetry": True,
                "retryInS": round(delay, 3),
                "tries": tries,
                "deliveries": ctx.deliveries,
            }
            self._ledger.record(self._row(step, error, exc, retry))
            log.info(
                "%s %s attempt %d failed (%s); retry in %.1fs",
                self.track.name,
                ctx.correlation_id,
                ctx.attempt,
                error,
                delay,
            )
            await msg.nak(delay)
            self.metrics.retried.inc()
            return
        details: dict[str, object] = {"permanent": permanent, "tries": tries, "deliveries": ctx.deliveries}
        buried = await self.dead_letter(
            self._burial(
                step,
                type(exc).__name__,
                str(exc),
                finish_step=step.claim is not None,
                details=details,
                traceback=DeadLetters.format_traceback(exc),
            )
        )
        if buried:
            log.warning(
                "%s %s dead-lettered after %d tries: %s", self.track.name, ctx.correlation_id, tries, error
            )
        else:
            log.warning(
                "%s %s: failure of a step another replica took over; not dead-lettered (the message "
                "is left to that replica)",
                self.track.name,
                ctx.correlation_id,
            )
            self.metrics.superseded.inc()
            return
        await msg.term()
        self.metrics.dead_lettered.inc()

    async def _cancelled(self, step: Step, exc: Exception, error: str) -> None:
        """The run was cancelled and the handler stopped: the step ends ``cancelled``, no retry."""
        ctx = step.ctx
        written = await self._ledger.finish(
            StepFinish(
                "cancelled",
                step.log_row(
                    "cancelled",
                    error=error,
                    error_type=type(exc).__name__,
                    duration_ms=(time.monotonic() - step.started) * 1000,
                    details={"reason": ctx.cancel_reason},
                ),
                fence=step.fence,
            )
        )
        self.metrics.duration.observe(time.monotonic() - step.started)
        if not written.applied:  # another replica took the step over: its message, not ours
            self.metrics.superseded.inc()
            return
        log.info("%s %s stopped: its run was cancelled", self.track.name, ctx.correlation_id)
        await step.msg.ack()
        self.metrics.cancelled.inc()

    async def poison(self, msg: Msg, meta: Msg.Metadata, exc: PoisonMessage) -> None:
        """Unusable on arrival: straight to the DLQ on this first delivery, never redelivered.

        When the correlation ID came with the message (subject or header), whoever waits on it
        hears the failure: ``tracks.<track>.failed.<cid>``, and for a workflow's root track the
        run is recorded as failed and announced (never a run that exists already).
        """
        cid, known = fallback_correlation_id(
            msg.subject, headers.plain(msg.headers), meta.sequence.stream, stored_at_us(msg.reply)
        )
        original = Original.of(msg)
        root = self._plan.root and self._plan.workflow is not None
        await self.dead_letter(
            Burial(
                original,
                DeadLetter(self.track.name, cid, "PoisonMessage", str(exc), meta.num_delivered),
                workflow=self._plan.workflow,
                attempt=meta.num_delivered,
                details={"permanent": True, "subject": msg.subject[:300], "poison": True},
                announce=known,
                fail_run=known and root,
                open_failed_run=known and root,
                ran=False,
            )
        )
        log.warning("%s: poison message on %s dead-lettered: %s", self.track.name, msg.subject[:200], exc)
        await msg.term()
        self.metrics.poison.inc()

    async def hand_back(self, msg: Msg) -> None:
        """Fetched but never started: back to the stream at once, for this or another replica.

        Nothing was claimed, so the ledger counts no try; JetStream counts a delivery, which is
        why exhaustion is decided by tries, and the consumer's own ``max_deliver`` leaves room.
        """
        self.metrics.handed_back.inc()
        try:
            await msg.nak()
        except Exception as exc:  # the connection may be gone: ack_wait hands it back then
            log.debug("hand-back of %s failed: %s", msg.subject, exc)

    def _burial(
        self,
        step: Step,
        error_type: str,
        error: str,
        *,
        finish_step: bool,
        details: dict[str, object],
        traceback: str | None = None,
        announce: bool = True,
        fail_run: bool = True,
        ran: bool = True,
    ) -> Burial:
        ctx = step.ctx
        return Burial(
            Original.of(step.msg),
            DeadLetter(self.track.name, ctx.correlation_id, error_type, error, ctx.deliveries, traceback),
            user_id=ctx.user_id,
            workflow=ctx.workflow,
            finish_step=finish_step,
            fence=step.fence,
            attempt=ctx.attempt,
            details=details,
            announce=announce,
            fail_run=fail_run,
            ran=ran,
            trace_id=ctx.trace_id,
            duration_ms=(time.monotonic() - step.started) * 1000,
        )

    @staticmethod
    def _row(step: Step, error: str, exc: Exception, details: dict[str, object]) -> LogRow:
        return step.log_row(
            "failed",
            error=error,
            error_type=type(exc).__name__,
            duration_ms=(time.monotonic() - step.started) * 1000,
            details=details,
        )
