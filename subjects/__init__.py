"""The wire contract: subject names, streams, the ``TrackEvent`` envelope, header names.

The names below are imported on first use (PEP 562): ``from subjects import STREAM`` (a
read-only CLI command) does not import pydantic (the envelope) and nats-py (the streams).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
_SUBMODULES = ("headers", "names")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"subjects.{name}")
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'subjects' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF, *_SUBMODULES})


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
