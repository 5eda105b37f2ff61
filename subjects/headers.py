"""NATS header names this project reads and writes, and :func:`plain` to read them back."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from email.header import Header, decode_header

__all__ = [
    "CORRELATION_ID",
    "DLQ_HEADERS",
    "MSG_ID",
    "ORIGINAL_GONE",
    "PRIORITY",
    "REPLAY",
    "TRACEPARENT",
    "TRACESTATE",
    "plain",
]

MSG_ID = "Nats-Msg-Id"
"""JetStream de-duplication key (within the stream's duplicate window)."""
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
CORRELATION_ID = "Tracks-Correlation-Id"
"""Optional: the correlation ID of a plain-JSON trigger (else the subject's, else generated)."""
PRIORITY = "Tracks-Priority"
"""``high`` | ``normal`` | ``low``: set on scheduler ticks; actors run higher priorities first."""
REPLAY = "Tracks-Replay"
"""How many times the message was replayed from the DLQ (1 on the first replay)."""
ORIGINAL_GONE = "Tracks-Original-Gone"
"""On a dead letter whose original the stream no longer held (found by the unsettled-step sweep)."""


class DLQ_HEADERS:
    """What a dead letter carries besides the original's own headers (``dlq.<track>.<cid>``)."""

    SUBJECT = "Tracks-Original-Subject"
    STREAM_SEQ = "Tracks-Original-Stream-Seq"
    TRACK = "Tracks-Track"
    CORRELATION_ID = CORRELATION_ID
    ERROR_TYPE = "Tracks-Error-Type"
    ERROR = "Tracks-Error"
    TRACEBACK = "Tracks-Traceback"
    DELIVERIES = "Tracks-Deliveries"
    FIRST_FAILURE = "Tracks-First-Failure"
    LAST_FAILURE = "Tracks-Last-Failure"
    BODY_REF = "Tracks-Original-Body-Ref"
    """The original body was too large to travel with the dead letter: a payload-store reference (JSON)."""
    DROPPED_HEADERS = "Tracks-Dropped-Headers"
    """Original headers left out to keep the dead letter under max_payload (comma-separated names)."""


def plain(raw: Mapping[str, object] | None) -> dict[str, str]:
    """A nats.py headers dict as plain ``{name: text}``: what every reader of headers should use.

    nats.py parses the headers of a delivered message itself (UTF-8, plain ``str``), but those
    of a message read back from a stream (``js.get_msg``, ``get_last_msg``) with
    ``email.parser``: a value with non-ASCII bytes then comes back as an
    ``email.header.Header``, which is not a ``str`` (no ``strip``, no ``len``; ``str()`` of it
    turns every non-ASCII byte into U+FFFD). Such a value is decoded here to its text, from
    UTF-8 as NATS headers are written (invalid bytes become U+FFFD). ``None`` gives ``{}``.
    """
    if not raw:
        return {}
    return {str(name): _text(value) for name, value in raw.items()}


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Header):
        # A parsed Header holds its raw bytes as chunks; ``decode_header`` hands them back as
        # they were on the wire (no RFC 2047 decoding of a parsed header's chunks: NATS headers
        # are not e-mail).
        parts: list[str] = []
        for chunk, charset in decode_header(value):
            if isinstance(chunk, str):
                parts.append(chunk)
                continue
            parts.append(chunk.decode(_codec(charset), "replace"))
        return "".join(parts)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _codec(charset: str | None) -> str:
    """The charset of a chunk: ``unknown-8bit`` (raw bytes from the wire), none or an unknown one is UTF-8."""
    if not charset or charset.lower() == "unknown-8bit":
        return "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"
