"""Turn a JetStream message into an activation of a track, or say exactly why not.

Accepted bodies:
- a ``TrackEvent`` envelope (camelCase), e.g. an upstream's completion event;
- any other JSON object: a plain trigger whose body is the payload (``nats pub``).
The correlation ID comes from the envelope, else the subject's last token, else the
``Tracks-Correlation-Id`` header, else it is derived from the message itself (its stream
sequence and the time the stream stored it), so a redelivered plain trigger keeps the same
ID while a new message is never mistaken for an old one after the stream was re-created.

Anything that cannot be stored or routed is refused here, as :class:`PoisonMessage` with a
precise reason, on the first delivery: a body that is not UTF-8 JSON (RFC 8259: no byte
order mark, no NaN or Infinity), a JSON value PostgreSQL's ``jsonb`` cannot hold (``\\u0000``,
a lone surrogate, a number out of a double's range such as ``1e400``), a body nested deeper
than :data:`MAX_DEPTH` (the runtime re-encodes payloads a few levels down in its own documents,
and their encoder stops at 255 levels), an envelope field that becomes a subject token or a column
and is not one (correlation ID, workflow, source track, user ID: the whole value, a trailing
newline included), a claim-check reference naming no possible bucket, and any exception at all
while decoding (a body nested a hundred thousand deep, an integer of ten thousand digits).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from actors.errors import PoisonMessage
from actors.transport.payloads import REF_KEY
from subjects import ParsedSubject, SubjectKind, TrackEvent, headers, parse

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_USER_ID_CHARS",
    "Activation",
    "decode",
    "derived_cid",
    "fallback_correlation_id",
    "stored_at_us",
    "time_us",
]

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_USER_ID_CHARS = 256
MAX_DEPTH = 200
"""Deepest nesting of a body's arrays and objects (an envelope's own object counts). The fast path
needs no check: pydantic-core's JSON parser refuses a document this deep by itself (it stops
at 201 levels), and the general path then says why."""
_OWN_ENVELOPE = b'{"trackId":'
_NAMESPACE = uuid.UUID("6f2b1c52-4d1e-4f7e-9a57-7d0c1f2a9b10")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""A subject token, matched whole (``subjects.check_token``'s ``$`` also lets a trailing newline by)."""
_BUCKET = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER_SHAPE = bytes.maketrans(b"123456789E:,[", b"000000000e###")
"""Digits to ``0``, ``E`` to ``e``, what may precede a JSON number to ``#`` (:func:`_may_overflow`)."""
_LONG_MANTISSA = b"0" * 200
_BIG_EXPONENT = re.compile(rb"#-?[0.]+e000")
"""In a body's :data:`_NUMBER_SHAPE`: a number with an exponent of three digits or more."""


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
    cid_known: bool = True
    """``False``: the ID was derived here (nobody who published the message knows it)."""


def decode(
    subject: str, body: bytes, hdrs: dict[str, str] | None, stream_seq: int, stored_us: int = 0
) -> Activation:
    """``stored_us``: when the stream stored the message (µs since the epoch; see :func:`stored_at_us`)."""
    try:
        return _decode(subject, body, hdrs, stream_seq, stored_us)
    except PoisonMessage:
        raise
    except Exception as exc:  # RecursionError, ValueError (huge integers), MemoryError's kin, ...
        raise PoisonMessage(
            f"body could not be decoded: {type(exc).__name__}: {_bounded(str(exc))}"
        ) from None


def _decode(
    subject: str, body: bytes, hdrs: dict[str, str] | None, stream_seq: int, stored_us: int
) -> Activation:
    parsed = parse(subject)
    if parsed is None:
        raise PoisonMessage(
            f"subject {_bounded(subject)!r} is not tracks.<track>.<run|completed|...>[.<cid>] "
            "(a correlation ID is one token: letters, digits, '_' or '-')"
        )
    if len(body) > MAX_BODY_BYTES:
        raise PoisonMessage(f"body of {len(body)} bytes exceeds the {MAX_BODY_BYTES} byte limit")
    if (
        body.startswith(_OWN_ENVELOPE)
        and b"\\u" not in body
        and b"NaN" not in body
        and b"Infinity" not in body
        and not _may_overflow(body)
    ):
        # Our own events (encode_event writes trackId first, and never escapes): parse and
        # validate in one pass. Escapes and non-finite numbers take the checked path below.
        try:
            return _from_envelope(parsed, TrackEvent.model_validate_json(body))
        except ValidationError:
            pass  # not an envelope after all, or a broken one: the general path says which
    data = _json_object(body)
    if TrackEvent.looks_like(data):
        try:
            envelope = TrackEvent.model_validate(data)
        except ValidationError as exc:
            raise PoisonMessage(f"invalid TrackEvent envelope: {_summarise(exc)}") from None
        return _from_envelope(parsed, envelope)

    if parsed.kind is not SubjectKind.RUN:
        raise PoisonMessage(f"{parsed.kind} event on {subject} is not a TrackEvent envelope")
    given = parsed.correlation_id or (hdrs or {}).get(headers.CORRELATION_ID)
    cid = given or derived_cid(stream_seq, stored_us)
    _check_reference(data)
    return Activation(_checked_cid(cid), None, parsed.kind, data, None, None, None, cid_known=bool(given))


def _json_object(body: bytes) -> dict[str, Any]:
    """A JSON object that PostgreSQL's jsonb can store, from strict UTF-8; else poison with the reason."""
    if not body.strip():
        return {}
    if body.startswith(_BOMS):
        raise PoisonMessage("body starts with a byte order mark: JSON must be UTF-8 without one (RFC 8259)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PoisonMessage(f"body is not valid UTF-8: {exc}") from None
    try:
        data: Any = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PoisonMessage(f"body must be a JSON object, got {type(data).__name__}")
    if _brackets(body) > MAX_DEPTH:
        _check_depth(data)
    if "\\u" in text:  # only an escape can smuggle in a NUL or a lone surrogate
        _check_storable(data)
    return data


def _no_constant(name: str) -> Any:
    raise PoisonMessage(f"body holds {name}, which is not JSON (RFC 8259) and cannot be stored")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PoisonMessage(
            f"body holds the number {_bounded(text, 40)}, which is not a finite double (it would be "
            "Infinity) and cannot be stored"
        )
    return value


def _may_overflow(body: bytes) -> bool:
    """Whether the body may hold a number out of a double's range (``1e400``; 200 digits before a
    fraction): pydantic-core parses those as infinity, which the checked path refuses.

    Conservative and cheap (C-level passes over the bytes; the regular expression only when
    something looks like a long exponent): a string that looks like such a number (``": 3e123"``)
    only sends its body down the checked path.
    """
    shape = body.translate(_NUMBER_SHAPE, b" \t\n\r+")
    return _LONG_MANTISSA in shape or (b"e000" in shape and _BIG_EXPONENT.search(shape) is not None)


def _brackets(body: bytes) -> int:
    """An upper bound of the body's depth (brackets inside strings count too): cheap to take."""
    return body.count(b"[") + body.count(b"{")


def _check_depth(value: Any) -> None:
    """The body (``value``, a parsed object) may not nest beyond :data:`MAX_DEPTH`: level by level."""
    level, depth = [value], 1
    while level:
        if depth > MAX_DEPTH:
            raise PoisonMessage(f"body is nested more than {MAX_DEPTH} levels deep")
        inner = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    inner.append(child)
        level, depth = inner, depth + 1


def _check_reference(payload: dict[str, Any]) -> None:
    """A claim-check reference (see :mod:`actors.transport.payloads`) must name a bucket that can exist."""
    ref = payload.get(REF_KEY) if len(payload) == 1 else None
    if isinstance(ref, dict) and "bucket" in ref and not _BUCKET.fullmatch(str(ref["bucket"])):
        raise PoisonMessage(
            f"payload reference names bucket {_bounded(str(ref['bucket']), 100)!r}, which is not a "
            "bucket name (letters, digits, '_' or '-')"
        )


def _check_storable(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key)
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise PoisonMessage("body holds a \\u0000 character, which PostgreSQL's jsonb cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PoisonMessage(
            "body holds a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
        ) from None


def _from_envelope(parsed: ParsedSubject, envelope: TrackEvent) -> Activation:
    meta = envelope.metadata
    cid = _checked_cid(meta.correlation_id)
    source = None if parsed.kind is SubjectKind.RUN else parsed.track
    workflow = meta.workflow
    if workflow is not None:
        _checked(workflow, "metadata.workflow")
    _checked(meta.source_track, "metadata.sourceTrack")
    for target in meta.target_tracks or ():
        _checked(target, "metadata.targetTracks")
    _check_reference(envelope.payload)
    user_id = meta.user_id
    if user_id is not None and (len(user_id) > MAX_USER_ID_CHARS or _CONTROL.search(user_id)):
        raise PoisonMessage(
            f"metadata.userId {_bounded(user_id)!r} must be at most {MAX_USER_ID_CHARS} characters "
            "without control characters"
        )
    return Activation(cid, source, parsed.kind, envelope.payload, user_id, workflow, envelope)


def fallback_correlation_id(
    subject: str, hdrs: dict[str, str] | None, stream_seq: int, stored_us: int = 0
) -> tuple[str, bool]:
    """The ID a plain trigger would get, for a message that could not be decoded: never raises.

    Returns ``(cid, known)``: ``known`` when the subject or a header gave it (someone may wait on it).
    """
    parsed = parse(subject)
    for candidate in (parsed.correlation_id if parsed else None, (hdrs or {}).get(headers.CORRELATION_ID)):
        if isinstance(candidate, str) and _TOKEN.fullmatch(candidate):
            return candidate, True
    return derived_cid(stream_seq, stored_us), False


def derived_cid(stream_seq: int, stored_us: int) -> str:
    """Stable for one stored message (its redeliveries), new for every other one.

    The stream sequence alone repeats when the stream is re-created (``nats stream rm``, lost
    storage) while PostgreSQL keeps the runs: the time the stream stored the message tells
    the two lifetimes apart. Read that time to the microsecond, as both the delivery's reply
    subject (:func:`stored_at_us`) and ``STREAM.MSG.GET`` (nats.py truncates it) give it.
    """
    return str(uuid.uuid5(_NAMESPACE, f"seq:{stream_seq}:{stored_us}"))


def stored_at_us(reply: str | None) -> int:
    """When the stream stored a delivered message, in µs, from its ack subject (exact, unlike
    nats.py's ``metadata.timestamp``, which goes through a float); 0 when it has none."""
    if not reply:
        return 0
    tokens = reply.split(".")
    try:
        if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
            return int(tokens[7]) // 1000
        if (
            len(tokens) >= 11
        ):  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>...
            return int(tokens[9]) // 1000
    except ValueError:
        return 0
    return 0


def time_us(moment: datetime | None) -> int:
    """A stored message's time (``RawStreamMsg.time``) in µs since the epoch, exactly."""
    if moment is None:
        return 0
    return (moment - _EPOCH) // _US


_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _checked_cid(cid: str) -> str:
    return _checked(cid, "correlation ID")


def _checked(value: str, what: str) -> str:
    """The whole value must be one subject token (``check_token``'s ``$`` matches before a final
    newline: ``"c1\\n"`` passed it, and its subjects then failed to publish)."""
    if isinstance(value, str) and _TOKEN.fullmatch(value):
        return value
    raise PoisonMessage(
        _bounded(
            f"{what} {value!r} must be 1-128 characters of letters, digits, '_' or '-' "
            "(it becomes a NATS subject token)",
            300,
        )
    )


def _bounded(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summarise(exc: ValidationError, limit: int = 5) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {_bounded(e['msg'])}"
        for e in exc.errors()[:limit]
    ]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
