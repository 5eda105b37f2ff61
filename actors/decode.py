"""Turn a JetStream message into an activation of a track, or say exactly why not.

Accepted bodies:
- a ``TrackEvent`` envelope (camelCase), e.g. an upstream's completion event;
- any other JSON object: a plain trigger whose body is the payload (``nats pub``).
The correlation ID comes from the envelope, else the subject's last token, else the
``Tracks-Correlation-Id`` header, else it is derived from the stream sequence, so a
redelivered plain trigger keeps the same ID.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from subjects import ParsedSubject, SubjectKind, TrackEvent, check_token, headers, parse

from .errors import PoisonMessage

__all__ = ["MAX_BODY_BYTES", "Activation", "decode", "fallback_correlation_id"]

MAX_BODY_BYTES = 8 * 1024 * 1024
_OWN_ENVELOPE = b'{"trackId":'
_NAMESPACE = uuid.UUID("6f2b1c52-4d1e-4f7e-9a57-7d0c1f2a9b10")


@dataclass(frozen=True)
class Activation:
    correlation_id: str
    source_track: str | None
    """The upstream whose event this is; ``None`` for a direct trigger."""
    kind: SubjectKind
    payload: dict[str, Any]
    user_id: str | None
    workflow: str | None
    envelope: TrackEvent | None


def decode(subject: str, body: bytes, hdrs: dict[str, str] | None, stream_seq: int) -> Activation:
    parsed = parse(subject)
    if parsed is None:
        raise PoisonMessage(f"subject {subject!r} is not tracks.<track>.<run|completed|...>[.<cid>]")
    if len(body) > MAX_BODY_BYTES:
        raise PoisonMessage(f"body of {len(body)} bytes exceeds the {MAX_BODY_BYTES} byte limit")
    if body.startswith(_OWN_ENVELOPE):
        # Our own events (encode_event writes trackId first): parse and validate in one pass.
        try:
            return _from_envelope(parsed, TrackEvent.model_validate_json(body))
        except ValidationError:
            pass  # not an envelope after all, or a broken one: the general path says which
    try:
        data: Any = json.loads(body) if body.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PoisonMessage(f"body must be a JSON object, got {type(data).__name__}")

    if TrackEvent.looks_like(data):
        try:
            envelope = TrackEvent.model_validate(data)
        except ValidationError as exc:
            raise PoisonMessage(f"invalid TrackEvent envelope: {_summarise(exc)}") from None
        return _from_envelope(parsed, envelope)

    if parsed.kind is not SubjectKind.RUN:
        raise PoisonMessage(f"{parsed.kind} event on {subject} is not a TrackEvent envelope")
    cid = parsed.correlation_id or (hdrs or {}).get(headers.CORRELATION_ID) or _derived_cid(hdrs, stream_seq)
    return Activation(_checked_cid(cid), None, parsed.kind, data, None, None, None)


def _from_envelope(parsed: ParsedSubject, envelope: TrackEvent) -> Activation:
    cid = _checked_cid(envelope.metadata.correlation_id)
    source = None if parsed.kind is SubjectKind.RUN else parsed.track
    return Activation(
        cid,
        source,
        parsed.kind,
        envelope.payload,
        envelope.metadata.user_id,
        envelope.metadata.workflow,
        envelope,
    )


def fallback_correlation_id(subject: str, hdrs: dict[str, str] | None, stream_seq: int) -> str:
    """The ID a plain trigger would get, for a message that could not be decoded: never raises."""
    parsed = parse(subject)
    for candidate in (parsed.correlation_id if parsed else None, (hdrs or {}).get(headers.CORRELATION_ID)):
        if candidate:
            try:
                return check_token(candidate, "correlation ID")
            except ValueError:
                pass
    return _derived_cid(hdrs, stream_seq)


def _derived_cid(hdrs: dict[str, str] | None, stream_seq: int) -> str:
    """Stable for the message: its ``Nats-Msg-Id`` if any, else its stream sequence."""
    basis = (hdrs or {}).get(headers.MSG_ID) or f"seq:{stream_seq}"
    return str(uuid.uuid5(_NAMESPACE, basis))


def _checked_cid(cid: str) -> str:
    try:
        return check_token(cid, "correlation ID")
    except ValueError as exc:
        raise PoisonMessage(str(exc)) from None


def _summarise(exc: ValidationError, limit: int = 5) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors()[:limit]]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
