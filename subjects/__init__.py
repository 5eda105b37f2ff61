"""The wire contract: subject names, streams, the ``TrackEvent`` envelope, header names."""

from subjects import headers, names
from subjects.envelope import EventMetadata, EventType, TrackEvent, encode_event
from subjects.names import DLQ_STREAM, STREAM, ParsedSubject, RunOutcome, SubjectKind, check_token, parse
from subjects.streams import StreamReplicasError, dlq_stream, ensure_streams, replicas_refused, tracks_stream

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
