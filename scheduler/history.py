"""Execution history from the runs themselves: a run's outcome updates the tick's row.

A durable pull consumer on ``TRACKS`` (filters ``tracks.*.completed.*``, ``tracks.*.failed.*`` and
``tracks.workflow.*.*.*``) is shared by all scheduler replicas, so each event is handled once.
A tick that starts a workflow ends as the **run** ends: ``tracks.workflow.<wf>.<outcome>.<cid>``
(completed, failed, timed_out, cancelled) sets the row's status; the events of the run's
tracks (they carry ``metadata.workflow``) are only steps and change nothing. A tick of a plain
track (no workflow) ends with that track's completed or failed event. Events of runs no
schedule started simply match no row and are acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from scheduler.executions import ExecutionStore, Finished
from subjects import STREAM, RunOutcome, SubjectKind, TrackEvent, names, parse

__all__ = ["HistoryConsumer", "error_text"]

log = logging.getLogger(__name__)

_MAX_DETAIL_BYTES = 8192


def error_text(payload: dict[str, Any]) -> str:
    """The most telling error line a failed event carries."""
    for key in ("error", "errorMessage", "message", "reason"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            inner = value.get("message") or value.get("error")
            kind = value.get("type") or value.get("errorType")
            if inner:
                return f"{kind}: {inner}" if kind else str(inner)
    return "the run reported a failure without an error message"


def _details(event: TrackEvent | None, payload: dict[str, Any], kind: str) -> dict[str, Any]:
    text = json.dumps(payload, default=str)
    details: dict[str, Any] = (
        {"result": payload} if len(text) <= _MAX_DETAIL_BYTES else {"resultBytes": len(text)}
    )
    details["finishedBy"] = event.track_id if event is not None else None
    details["event"] = kind
    return details


_RUN_ERRORS = {
    RunOutcome.TIMED_OUT: "the workflow run timed out (deadline {deadline})",
    RunOutcome.CANCELLED: "the workflow run was cancelled{reason}",
}


def _run_error(outcome: RunOutcome, payload: dict[str, Any]) -> str | None:
    if outcome is RunOutcome.COMPLETED:
        return None
    if outcome is RunOutcome.FAILED:
        track, error = payload.get("track"), payload.get("error")
        return f"{track}: {error}" if track and error else error_text(payload)
    reason = payload.get("reason")
    return _RUN_ERRORS[outcome].format(
        deadline=payload.get("deadline", "unknown"), reason=f": {reason}" if reason else ""
    )


class HistoryConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        executions: ExecutionStore,
        *,
        durable: str,
        on_finished: Callable[[Finished], Awaitable[None]],
        batch: int = 64,
    ) -> None:
        self._js = js
        self._executions = executions
        self._durable = durable
        self._on_finished = on_finished
        self._batch = batch
        self.handled = 0
        self.unmatched = 0
        self.steps = 0
        """Events of a workflow's tracks: steps, not the run's end (its outcome event ends the tick)."""
        self.failures = 0

    async def ensure(self) -> None:
        """Create the consumer before the first tick is published, so no completion is missed."""
        await self._js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=self._durable,
                filter_subjects=[
                    names.event("*", SubjectKind.COMPLETED, "*"),
                    names.event("*", SubjectKind.FAILED, "*"),
                    names.workflow_outcomes(),
                ],
                deliver_policy=DeliverPolicy.NEW,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
                max_deliver=10,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; a lost subscription (NATS restart, consumer deleted) is rebuilt."""
        while not stop.is_set():
            try:
                await self._consume(stop)
            except Exception as exc:
                self.failures += 1
                log.warning("history: %s: %s; resubscribing in 1 s", type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                with contextlib.suppress(Exception):
                    await self.ensure()  # the consumer may have been deleted

    async def _consume(self, stop: asyncio.Event) -> None:
        sub = await self._js.pull_subscribe_bind(durable=self._durable, stream=STREAM)
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self._batch, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    continue
                for msg in msgs:
                    await self._handle(msg)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle(self, msg: Msg) -> None:
        """Ack what was applied or can never apply; nak (retry later) when PostgreSQL failed."""
        try:
            await self._apply(msg)
        except (ValueError, TypeError) as exc:
            log.warning("history: ignoring undecodable event on %s: %s", msg.subject, exc)
        except Exception:
            log.exception("history: could not record %s; will retry", msg.subject)
            await msg.nak(delay=2)
            return
        await msg.ack()

    async def _apply(self, msg: Msg) -> None:
        run = names.parse_workflow_event(msg.subject)
        parsed = parse(msg.subject) if run is None else None
        if run is None and (parsed is None or parsed.correlation_id is None):
            return
        body = json.loads(msg.data or b"{}")
        event = TrackEvent.model_validate(body) if TrackEvent.looks_like(body) else None
        payload = event.payload if event is not None else (body if isinstance(body, dict) else {})
        if run is not None:
            workflow, outcome, cid = run
            status, error = outcome.value, _run_error(outcome, payload)
            details = {**_details(event, payload, f"workflow.{outcome.value}"), "workflow": workflow}
        else:
            assert parsed is not None and parsed.correlation_id is not None
            if event is not None and event.metadata.workflow is not None:
                self.steps += 1  # a step of a workflow run: the run's own outcome ends the tick
                return
            failed = parsed.kind is SubjectKind.FAILED
            cid, status = parsed.correlation_id, "failed" if failed else "completed"
            error = error_text(payload) if failed else None
            details = _details(event, payload, parsed.kind.value)
        finished = await self._executions.finish(cid, status, error=error, details=details)
        if finished is None:
            self.unmatched += 1
            return
        self.handled += 1
        await self._on_finished(finished)
