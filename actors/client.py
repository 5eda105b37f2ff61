"""Start tracks and workflows from code.

``trigger`` and ``start`` publish run commands and return at once (asynchronous use);
``run`` starts a workflow and waits for its outcome event (synchronous use).

An input whose JSON is over the payload store's threshold is stored in the object store and
its reference is published instead (see :meth:`PayloadStore.offload_input`), so no run command
fails on NATS's max payload; the worker resolves it before the handler sees its input.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from actors.transport.payloads import PayloadStore, is_ref
from actors.workflow import Workflow
from foundation import telemetry
from foundation.jetstream.publisher import EventPublisher
from subjects import EventMetadata, EventType, RunOutcome, TrackEvent, check_token, headers, names
from subjects.priority import Priority

log = logging.getLogger(__name__)

__all__ = ["RunCancelled", "RunFailed", "RunTimedOut", "TracksClient", "WaitTimeout", "new_correlation_id"]


def new_correlation_id() -> str:
    return uuid.uuid4().hex


class RunFailed(RuntimeError):
    """The workflow run failed: a step was dead-lettered (``error`` says which and why)."""

    def __init__(self, correlation_id: str, error: str) -> None:
        super().__init__(f"run {correlation_id} failed: {error}")
        self.correlation_id = correlation_id
        self.error = error


class RunTimedOut(RuntimeError):
    """The run passed its workflow's deadline and was marked timed out (``tracks resume`` continues it)."""


class RunCancelled(RuntimeError):
    """The run was cancelled (``tracks cancel``, :meth:`TracksClient.cancel`); ``reason`` says why."""

    def __init__(self, correlation_id: str, reason: str | None) -> None:
        super().__init__(f"run {correlation_id} was cancelled" + (f": {reason}" if reason else ""))
        self.correlation_id = correlation_id
        self.reason = reason


class WaitTimeout(TimeoutError):
    """The caller stopped waiting; the run itself goes on."""


class TracksClient:
    def __init__(self, connection: JetStreamContext | NATS, *, payloads: PayloadStore | None = None) -> None:
        """``payloads``: where large inputs go and large results come from; by default the
        ``TRACKS_PAYLOADS`` bucket with the default threshold and TTL (give one built from the
        settings, ``TRACKS_PAYLOAD_THRESHOLD_BYTES`` and ``TRACKS_PAYLOAD_TTL_S``, to honour them)."""
        if isinstance(connection, NATS):
            self._nc: NATS | None = connection
            js = connection.jetstream()
        else:
            self._nc = None
            js = connection
        self._publisher = EventPublisher(js)
        self._payloads = payloads or PayloadStore(js)

    async def start(
        self,
        workflow: Workflow,
        payload: dict[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        user_id: str | None = None,
        priority: Priority | str | None = None,
    ) -> str:
        """Trigger every root track of ``workflow`` for one new run; return its correlation ID.

        A large ``payload`` is stored once and its reference sent to every root. ``priority``
        (``high``, ``normal``, ``low``) travels with the run to every downstream step; ``high``
        takes the roots' urgent lane (see :meth:`trigger`)."""
        cid = check_token(correlation_id or new_correlation_id(), "correlation ID")
        roots = workflow.roots
        if not roots:
            raise ValueError(f"workflow {workflow.name} has no tracks")
        body = await self._payloads.offload_input(cid, payload or {})
        # one span for the run's start: every root's trigger is published in it, so the whole run
        # is one trace (a child of the caller's current span, when there is one)
        span = telemetry.start_span(
            f"start {workflow.name}",
            kind=SpanKind.INTERNAL,
            attributes={"tracks.workflow": workflow.name, "messaging.message.conversation_id": cid},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            for root in roots:
                await self.trigger(
                    root.name,
                    body,
                    correlation_id=cid,
                    user_id=user_id,
                    workflow=workflow.name,
                    priority=priority,
                )
        finally:
            otel_context.detach(token)
            span.end()
        return cid

    async def run(
        self,
        workflow: Workflow,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float,
        correlation_id: str | None = None,
        user_id: str | None = None,
        priority: Priority | str | None = None,
    ) -> Any:
        """Start a run and wait for it: its result, or :class:`RunFailed` / :class:`RunTimedOut` /
        :class:`RunCancelled` / :class:`WaitTimeout`. Needs a client made from a NATS connection (it
        listens for the outcome)."""
        if self._nc is None:
            raise TypeError(
                "TracksClient.run needs a client built from a NATS connection, not a JetStream context"
            )
        cid = check_token(correlation_id or new_correlation_id(), "correlation ID")
        outcomes: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_outcome(msg: Msg) -> None:
            outcomes.put_nowait(msg)

        # listen before starting, so even an instant outcome is not missed
        sub = await self._nc.subscribe(names.workflow_events(workflow.name, cid), cb=on_outcome)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self.start(workflow, payload, correlation_id=cid, user_id=user_id, priority=priority)
            while True:
                try:
                    msg = await asyncio.wait_for(outcomes.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise WaitTimeout(
                        f"run {cid} did not finish within {timeout:g}s; it goes on (see `tracks chain {cid}`)"
                    ) from None
                if await self._confirmed(cid, msg):
                    break
        finally:
            await sub.unsubscribe()
        return await self._resolved(_outcome_of(cid, msg))

    async def cancel(self, correlation_id: str, *, reason: str | None = None, wait_s: float = 5.0) -> bool:
        """Cancel a running run, through a running actor's request API (``tracksapi.cancel``).

        Returns ``False`` when it was cancelled before (the announcement is sent again, harmlessly).
        Raises :class:`~actors.runtime.request_api.ApiError`: 404 no such run, 409 it has finished.
        Needs a client built from a NATS connection."""
        from actors.runtime.request_api import call

        if self._nc is None:
            raise TypeError("TracksClient.cancel needs a client built from a NATS connection")
        body: dict[str, Any] = {"correlationId": check_token(correlation_id, "correlation ID")}
        if reason is not None:
            body["reason"] = reason
        reply = await call(self._nc, "cancel", body, wait_s=wait_s)
        return not reply.get("alreadyCancelled", False)

    async def _confirmed(self, cid: str, msg: Msg) -> bool:
        """Does the ledger agree with this outcome event? Asked of a running actor (``tracksapi.status``):
        an event that anyone could have published on ``tracks.workflow.>`` must not end the wait
        when the recorded run says otherwise. With no actor answering, the event is taken as it is."""
        from actors.runtime.request_api import ApiError, call

        assert self._nc is not None
        claimed = msg.subject.split(".")[-2]
        try:
            status = (await call(self._nc, "status", {"correlationId": cid}, wait_s=2.0)).get("status")
        except ApiError as exc:
            if exc.code == 404:
                log.warning("ignored an outcome event for run %s, which the ledger does not know", cid)
                return False
            return True
        except Exception:  # no actor answering (NoResponders, timeout): nothing to check against
            return True
        if status == claimed:
            return True
        log.warning("ignored a %s event for run %s: the ledger says %s", claimed, cid, status)
        return False

    async def _resolved(self, result: Any) -> Any:
        """A result (or a multi-leaf result's parts) that travelled by reference, fetched."""
        if is_ref(result):
            return await self._payloads.resolve(result)
        if isinstance(result, dict) and any(is_ref(v) for v in result.values()):
            return {k: await self._payloads.resolve(v) if is_ref(v) else v for k, v in result.items()}
        return result

    async def trigger(
        self,
        track: str,
        payload: dict[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        user_id: str | None = None,
        msg_id: str | None = None,
        source: str = "client",
        workflow: str | None = None,
        priority: Priority | str | None = None,
    ) -> tuple[str, PubAck]:
        """Publish ``tracks.<track>.run.<cid>``; de-duplicated per (cid, track) unless ``msg_id``.

        A ``payload`` over the payload store's threshold travels by reference (claim check).
        ``priority`` goes in the ``Tracks-Priority`` header (the track and every downstream step
        run higher priorities first); ``high`` is published on the track's urgent lane,
        ``tracks.<track>.urgent.<cid>``, which a backlog of lower-priority work cannot hold back."""
        check_token(track, "track name")
        cid = check_token(correlation_id or new_correlation_id(), "correlation ID")
        level = _priority(priority)
        event = TrackEvent(
            track_id=track,
            event_type=EventType.DATA_READY,
            payload=await self._payloads.offload_input(cid, payload or {}),
            metadata=EventMetadata(
                correlation_id=cid,
                source_track=source,
                target_tracks=[track],
                user_id=user_id,
                workflow=workflow,
            ),
        )
        hdrs = {headers.MSG_ID: msg_id or f"{cid}:{track}:run"}
        if level is not None:
            hdrs[headers.PRIORITY] = level
        ack = await self._publisher.publish(names.trigger(track, cid, level), event.to_bytes(), hdrs)
        return cid, ack


def _priority(value: Priority | str | None) -> str | None:
    """``high`` | ``normal`` | ``low`` (any case), or a ``ValueError`` naming the choices."""
    if value is None:
        return None
    try:
        return Priority(str(value).strip().lower()).value
    except ValueError:
        choices = ", ".join(p.value for p in Priority)
        raise ValueError(f"priority {value!r} must be one of {choices}") from None


def _outcome_of(correlation_id: str, msg: Msg) -> Any:
    outcome = msg.subject.split(".")[-2]
    payload = json.loads(msg.data).get("payload", {})
    if outcome == RunOutcome.COMPLETED:
        return payload.get("result")
    if outcome == RunOutcome.CANCELLED:
        raise RunCancelled(correlation_id, payload.get("reason"))
    if outcome == RunOutcome.TIMED_OUT:
        raise RunTimedOut(
            f"run {correlation_id} timed out (deadline {payload.get('deadline')}); "
            f"`tracks resume {correlation_id}` continues it"
        )
    raise RunFailed(correlation_id, f"{payload.get('track')}: {payload.get('error')}")
