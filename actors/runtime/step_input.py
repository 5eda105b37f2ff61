"""What a worker makes of a delivered message before the chain runs, and how it names NATS errors.

The step's :class:`TrackContext` (from the message, its parsed metadata and the decoded
activation), the check that a message belongs to the track's workflow, a header read whatever
its type, and which errors met while settling mean "NATS is away" (one line, no traceback).
"""

from __future__ import annotations

import asyncio

import nats.errors
from nats.aio.msg import Msg
from nats.js.errors import APIError, NoStreamResponseError

from actors.context import TrackContext
from actors.errors import PoisonMessage
from actors.track import Track
from actors.transport.decode import Activation
from subjects import headers

__all__ = ["check_workflow", "describe", "header_of", "nats_away", "step_context"]


def describe(exc: Exception) -> str:
    """The error's type, and JetStream's description when it has one."""
    detail = getattr(exc, "description", None)
    return f"{type(exc).__name__}: {detail}" if isinstance(exc, APIError) and detail else type(exc).__name__


_NATS_AWAY = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    NoStreamResponseError,
    asyncio.TimeoutError,
)
"""Settling met NATS unavailable (its publisher gave up retrying): expected during a failover."""
_IN_PROCESS = 10158
"""JetStream's "duplicate message id is in process": an earlier try of this publish is still
being decided by a stream leader that cannot commit (cut off from its peers); outcome unknown."""


def nats_away(exc: Exception) -> bool:
    return isinstance(exc, _NATS_AWAY) or (isinstance(exc, APIError) and exc.err_code == _IN_PROCESS)


def check_workflow(track: Track, activation: Activation) -> None:
    """A track of workflow W takes no message that claims another workflow (it would record and
    announce a run of a workflow it is not part of)."""
    graph = track.graph
    if graph is not None and activation.workflow is not None and activation.workflow != graph.name:
        raise PoisonMessage(
            f"metadata.workflow {activation.workflow!r} is not the workflow of {track.name} ({graph.name!r})"
        )


def step_context(
    track: Track, msg: Msg, meta: Msg.Metadata, activation: Activation, hdrs: dict[str, str]
) -> TrackContext:
    """``meta`` is parsed once by the caller: nats-py re-parses ``msg.metadata`` on every access."""
    upstream = {activation.source_track: activation.payload} if activation.source_track else {}
    return TrackContext(
        track=track.name,
        correlation_id=activation.correlation_id,
        attempt=meta.num_delivered,
        workflow=activation.workflow or track.workflow,
        user_id=activation.user_id,
        subject=msg.subject,
        stream_seq=meta.sequence.stream,
        deliveries=meta.num_delivered,
        headers=hdrs,
        upstream=upstream,
        _heartbeat=msg.in_progress,
    )


def header_of(msg: Msg, name: str) -> str | None:
    value = (msg.headers or {}).get(name)
    return value if value is None or isinstance(value, str) else headers.plain({name: value})[name]
