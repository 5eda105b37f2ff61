"""The one door to the DLQ: every dead letter of the runtime goes through :meth:`DeadLetterDoor.bury`.

The worker's failures, poison on arrival, a try that never settled, the max-deliveries
advisory, the unsettled-step sweep and unroutable triggers all bury the same way, in this
order, so that what is durable never drifts apart between them:

1. the failure recorded — fenced by the claimed attempt when the message owns its step (a
   replica that lost the step to another does not dead-letter it), else a log row;
2. the dead letter published to the DLQ stream and confirmed (it always fits max_payload);
3. ``tracks.<track>.failed.<cid>`` when someone may wait on the correlation ID;
4. the workflow run failed and announced (a root's run that never opened is recorded as
   failed; a run that exists is never failed by a message that does not own a step of it).

The caller settles the message it holds (term), if it holds one.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.failures.dead_letter import DeadLetter, DeadLetters, Original
from actors.ledger.runs import Runs
from actors.ledger.store import Ledger, LogRow, StepFinish
from actors.transport.payloads import PayloadStore
from foundation.jetstream.publisher import EventPublisher, bounded
from subjects import SubjectKind

__all__ = ["EXHAUSTED_ERROR", "Burial", "DeadLetterDoor"]

EXHAUSTED_ERROR = "MaxDeliveriesExceeded"
"""Error type of a message whose last try never settled (actor killed or hung)."""


@dataclass(frozen=True)
class Burial:
    """Everything the dead-letter door needs to know about one message it buries."""

    original: Original
    letter: DeadLetter
    user_id: str | None = None
    workflow: str | None = None
    finish_step: bool = False
    """The message owns the step: mark it failed (fenced by ``fence``); else only a log row."""
    fence: int | None = None
    attempt: int = 1
    details: dict[str, object] | None = None
    announce: bool = True
    """Publish ``tracks.<track>.failed.<cid>`` (someone may wait on the cid)."""
    fail_run: bool = True
    """Fail the workflow run (a forged event for a live run must not)."""
    open_failed_run: bool = False
    """No run exists yet (a bad trigger of a root track): record one as failed, to announce it."""
    trace_id: str | None = None
    duration_ms: float | None = None
    record: bool = True
    """Write the failure to the ledger (``False``: it is there already; only re-send the rest)."""
    ran: bool = True
    """The step may have failed before (look up its first failure); ``False`` for a message that
    never reached a handler (poison, unroutable, unexpected): this is its first and only failure."""


class DeadLetterDoor:
    """The one door to the DLQ, for every track of a process (see the module's docstring)."""

    def __init__(
        self, ledger: Ledger, publisher: EventPublisher, runs: Runs, payloads: PayloadStore | None = None
    ) -> None:
        self._ledger = ledger
        self._publisher = publisher
        self._dead_letters = DeadLetters(publisher, payloads, redact=ledger.redact)
        self._runs = runs

    async def bury(self, burial: Burial) -> bool:
        """Record the failure, send the dead letter, announce; ``False`` when fenced off.

        Used by the worker, for poison, by the max-deliveries advisory and by the sweep. The
        caller settles the message it holds (term), if it holds one.
        """
        letter = burial.letter
        details = {"deadLettered": True, **(burial.details or {})}
        row = LogRow(
            correlation_id=letter.correlation_id,
            track=letter.track,
            event_type="failed",
            attempt=burial.attempt,
            details=details,
            error=bounded(letter.error, 4000),
            error_type=letter.error_type,
            user_id=burial.user_id,
            trace_id=burial.trace_id,
            stream_seq=burial.original.stream_seq,
            duration_ms=burial.duration_ms,
        )
        if not burial.record:
            pass
        elif burial.finish_step:
            written = await self._ledger.finish(StepFinish("failed", row, fence=burial.fence))
            if not written.applied:
                return False
        else:
            await self._ledger.record_durably(row)
        first_failure = (
            await self._ledger.first_failure(letter.correlation_id, letter.track) if burial.ran else None
        )
        if first_failure is not None and letter.first_failure is None:
            letter = DeadLetter(
                letter.track,
                letter.correlation_id,
                letter.error_type,
                letter.error,
                letter.deliveries,
                letter.traceback,
                first_failure,
            )
        await self._dead_letters.send_original(burial.original, letter)
        error = bounded(letter.error)
        if burial.announce:
            await self._publisher.track_event(
                letter.track,
                SubjectKind.FAILED,
                letter.correlation_id,
                {"error": error, "errorType": letter.error_type},
                user_id=burial.user_id,
                workflow=burial.workflow,
            )
        if burial.fail_run and burial.open_failed_run and burial.workflow is not None:
            await self._runs.fail_unopened(
                letter.correlation_id, burial.workflow, letter.track, f"{letter.error_type}: {error}"
            )
        elif burial.fail_run:
            await self._runs.fail(letter.correlation_id, letter.track, f"{letter.error_type}: {error}")
        return True
