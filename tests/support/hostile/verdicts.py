"""The verdict vocabulary: the end states a hostile message may reach, the reasons a dead letter may
give, the message classes, :class:`Hostile` (one message with its end state), and :func:`reason_key`,
which reduces a dead letter's ``Tracks-Error`` to its reason for counting.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPLETED = "completed"
DEAD = "dead"

# Reasons a poison message may give (lower case); a case names the ones that fit it.
UTF8 = "utf-8"
BOM = "byte order mark"
NOT_JSON = "not valid json"
NOT_OBJECT = "must be a json object"
UNDECODABLE = "could not be decoded"
NESTED = "nested"
NON_FINITE = ("nan", "infinity", "finite")
NUL = "\\u0000"
SURROGATE = "surrogate"
SCHEMA = "does not match order"
CID = "correlation id"
WORKFLOW = "metadata.workflow"
USER_ID = "metadata.userid"
ENVELOPE = "invalid trackevent envelope"
NOT_ENVELOPE = "not a trackevent envelope"
UNEXPECTED = "never completed"
UNROUTABLE = "no track consumes"  # an unroutable subject's (UnroutableSubject), not a poison message's
ANY_POISON = (UTF8, BOM, NOT_JSON, NOT_OBJECT, UNDECODABLE, NESTED, *NON_FINITE, NUL, SURROGATE, SCHEMA)

KINDS = (
    "random_bytes",
    "broken_json",
    "non_object",
    "deep_nesting",
    "huge_int",
    "nan_inf",
    "nul_surrogate",
    "bom_encoding",
    "huge_body",
    "envelope",
    "odd_subject",
    "odd_header",
    "forged_event",
    "forged_ref",
    "good",
)
"""The classes drawn by hypothesis (``pinned`` cases are added to every batch)."""


@dataclass(frozen=True)
class Hostile:
    """One message to publish, and the end state it must reach."""

    kind: str
    variant: str
    subject: str
    body: bytes
    headers: dict[str, str] | None
    expect: str
    """``completed`` (the step ran and the run completed) or ``dead`` (a dead letter, first delivery)."""
    track: str
    """The track whose end state it is (the downstream for forged completion events)."""
    cid: str | None
    """The correlation ID of the end state; ``None`` when derived from the stream sequence."""
    error_type: str | None = None
    """For ``dead``: ``Tracks-Error-Type``, or several accepted ones as ``"A|B"``."""
    reasons: tuple[str, ...] = ()
    """For ``dead``: ``Tracks-Error`` (lower case) holds one of these."""
    forged: bool = False
    """A forged completion event: the downstream must never run for ``cid``."""
    huge: bool = False

    def describe(self) -> str:
        body = self.body if len(self.body) <= 120 else self.body[:100] + b"...(%d bytes)" % len(self.body)
        hdrs = {
            k: (v if len(v) <= 60 else v[:40] + f"...({len(v)} chars)")
            for k, v in (self.headers or {}).items()
        }
        return f"{self.kind}/{self.variant} on {self.subject[:160]!r} headers={hdrs} body={body!r}"


def reason_key(error: str) -> str:
    """A dead letter's ``Tracks-Error`` reduced to its reason, for counting."""
    text = error.lower()
    for key, label in (
        (UNROUTABLE, "unroutable subject"),
        (BOM, "byte order mark"),
        ("not valid utf-8", "not UTF-8"),
        (NOT_JSON, "not JSON"),
        (NOT_OBJECT, "not an object"),
        ("nan", "NaN/Infinity"),
        ("infinity", "NaN/Infinity"),
        ("finite", "non-finite number"),
        (NUL, "\\u0000"),
        (SURROGATE, "lone surrogate"),
        (NESTED, "nested too deep"),
        ("4300", "integer over 4300 digits"),
        (UNDECODABLE, "undecodable"),
        (WORKFLOW, "bad metadata.workflow"),
        (USER_ID, "bad metadata.userId"),
        ("metadata.sourcetrack", "bad metadata.sourceTrack"),
        (ENVELOPE, "invalid envelope"),
        (NOT_ENVELOPE, "event not an envelope"),
        (CID, "bad correlation ID"),
        (SCHEMA, "schema mismatch"),
        (UNEXPECTED, "unexpected (forged) event"),
        ("payload", "payload reference"),
    ):
        if key in text:
            return label
    return error[:60]
