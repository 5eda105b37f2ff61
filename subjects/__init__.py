"""The wire contract: subject names, streams, the ``TrackEvent`` envelope, header names.

The names below are imported on first use (PEP 562): ``from subjects import STREAM`` (a
read-only CLI command) does not import pydantic (the envelope) and nats-py (the streams).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from subjects._exports import lazy_exports

if TYPE_CHECKING:
    from subjects import headers, names
    from subjects.envelope import EventMetadata, EventType, TrackEvent, encode_event
    from subjects.names import DLQ_STREAM, STREAM, ParsedSubject, RunOutcome, SubjectKind, check_token, parse
    from subjects.streams import (
        StreamReplicasError,
        dlq_stream,
        ensure_streams,
        replicas_refused,
        tracks_stream,
    )

_WHERE = {
    "subjects.envelope": ("EventMetadata", "EventType", "TrackEvent", "encode_event"),
    "subjects.names": (
        "DLQ_STREAM",
        "STREAM",
        "ParsedSubject",
        "RunOutcome",
        "SubjectKind",
        "check_token",
        "parse",
    ),
    "subjects.streams": (
        "StreamReplicasError",
        "dlq_stream",
        "ensure_streams",
        "replicas_refused",
        "tracks_stream",
    ),
}
_SUBMODULES = ("headers", "names")
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, _SUBMODULES)


__all__ = [
    "DLQ_STREAM",
    "STREAM",
    "EventMetadata",
    "EventType",
    "ParsedSubject",
    "RunOutcome",
    "StreamReplicasError",
    "SubjectKind",
    "TrackEvent",
    "check_token",
    "dlq_stream",
    "encode_event",
    "ensure_streams",
    "headers",
    "names",
    "parse",
    "replicas_refused",
    "tracks_stream",
]
