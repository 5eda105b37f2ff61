"""Execution history from the runs themselves: completion and failure events update the tick's row.

A durable pull consumer on ``TRACKS`` (filters ``tracks.*.completed.*`` and ``tracks.*.failed.*``)
is shared by all scheduler replicas, so each event is handled once. Events of runs no schedule
started simply match no row and are acked.
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
from subjects import STREAM, SubjectKind, TrackEvent, parse

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


def _details(event: TrackEvent | None, payload: dict[str, Any], kind: SubjectKind) -> dict[str, Any]:
    text = json.dumps(payload, default=str)
    details: dict[str, Any] = (
        {"result": payload} if len(text) <= _MAX_DETAIL_BYTES else {"resultBytes": len(text)}
    )
    details["finishedBy"] = event.track_id if event is not None else None
    details["event"] = kind.value
    return details


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
        self.failures = 0

    async def ensure(self) -> None:
        """Create the consumer before the first tick is published, so no completion is missed."""
        await self._js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=self._durable,
                filter_subjects=["tracks.*.completed.*", "tracks.*.failed.*"],
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
        parsed = parse(msg.subject)
        if parsed is None or parsed.correlation_id is None:
            return
        body = json.loads(msg.data or b"{}")
        event = TrackEvent.model_validate(body) if TrackEvent.looks_like(body) else None
        payload = event.payload if event is not None else (body if isinstance(body, dict) else {})
        failed = parsed.kind is SubjectKind.FAILED
        finished = await self._executions.finish(
            parsed.correlation_id,
            "failed" if failed else "completed",
            error=error_text(payload) if failed else None,
            details=_details(event, payload, parsed.kind),
        )
        if finished is None:
            self.unmatched += 1
            return
        self.handled += 1
        await self._on_finished(finished)
