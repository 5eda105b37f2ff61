"""Odd subjects and odd headers: a good order on a run subject whose correlation-ID token is no
correlation ID (or has more tokens than any track's subject), and triggers with odd
``Tracks-Correlation-Id``, priority, trace-context, message-ID, oversized or many headers.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.support.hostile.builders import Build, _Names, _order, pick
from tests.support.hostile.verdicts import CID, COMPLETED, DEAD, NOT_JSON, UNROUTABLE, Hostile

_ODD_TOKENS = [
    "%41",
    "~x",
    "\u00e9t\u00e9",
    "a+b",
    "a=b",
    "a!b",
    "a@b",
    "#",
    "(x)",
    "\u65e5\u672c",
    "x" * 129,
    "y" * 200,
    ".b",  # dotted: tracks.<up>.run.<cid>.b is no track's subject (the unrouted consumer's)
    ".b.c",
    "." + "z" * 200,
]


@st.composite
def odd_subject(draw: st.DrawFn) -> Build:
    token = draw(pick(_ODD_TOKENS))
    header_cid = draw(st.booleans())

    def build(names: _Names) -> Hostile:
        cid = names.cid("oddsubj")
        hdrs = {"Tracks-Correlation-Id": cid} if header_cid else None
        if token.startswith("."):  # five tokens or more: the unrouted consumer's, filed under a derived ID
            return Hostile(
                "odd_subject",
                f"dotted{token[:6]}{'+header' if header_cid else ''}",
                f"tracks.{names.up}.run.{cid}{token}",
                _order(1),
                hdrs,
                DEAD,
                names.up,
                None,
                "UnroutableSubject",
                (UNROUTABLE,),
            )
        # the subject's token is no correlation ID: dead-lettered, filed under the header's ID
        # (a good one) when there is one, else under one derived from the message
        return Hostile(
            "odd_subject",
            f"{token[:8]}{'+header' if header_cid else ''}",
            f"tracks.{names.up}.run.{cid}{token}",
            _order(1),
            hdrs,
            DEAD,
            names.up,
            cid if header_cid else None,
            "PoisonMessage",
            (CID,),
        )

    return build


_BAD_HEADER_CIDS = ["a b", "x" * 200, "\u00e9", "*", "a.b", ">", "%"]
_ODD_VALUES = {
    "non_ascii": {"X-Customer": "M\u00fcller & S\u00f8n \u2014 \u65e5\u672c \u2713"},
    "priority": {"Tracks-Priority": "h\u00efgh"},
    "priority_high": {"Tracks-Priority": " HIGH "},
    "traceparent_garbage": {"traceparent": "garbage"},
    "traceparent_zero": {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"},
    "traceparent_long": {"traceparent": "00-" + "a" * 5000},
    "tracestate": {"tracestate": "=" * 300},
    "big_60k": {"X-Big": "b" * 60_000},
    "many": {f"X-H{i}": "v" * 100 for i in range(200)},
    "msg_id_weird": {"Nats-Msg-Id": "\u00e9\u00e9 %s"},
}


@st.composite
def odd_header(draw: st.DrawFn) -> Build:
    variant = draw(pick(["bad_cid", "good_cid", "empty_cid", *sorted(_ODD_VALUES)]))
    good_body = draw(st.booleans())
    bad_cid = draw(pick(_BAD_HEADER_CIDS))

    def build(names: _Names) -> Hostile:
        cid = names.cid("oddhdr")
        run = f"tracks.{names.up}.run"
        if variant == "bad_cid":  # no ID in the subject, a bad one in the header: derived
            return Hostile(
                "odd_header",
                f"bad_cid:{bad_cid[:6]!r}",
                run,
                _order(1),
                {"Tracks-Correlation-Id": bad_cid},
                DEAD,
                names.up,
                None,
                "PoisonMessage",
                (CID,),
            )
        if variant == "good_cid":
            return Hostile(
                "odd_header",
                variant,
                run,
                _order(2),
                {"Tracks-Correlation-Id": cid},
                COMPLETED,
                names.up,
                cid,
            )
        if variant == "empty_cid":  # an empty header is no ID: one is derived, and the trigger runs
            return Hostile(
                "odd_header",
                variant,
                run,
                _order(3),
                {"Tracks-Correlation-Id": ""},
                COMPLETED,
                names.up,
                None,
            )
        hdrs = dict(_ODD_VALUES[variant])
        if "Nats-Msg-Id" in hdrs:
            hdrs["Nats-Msg-Id"] = hdrs["Nats-Msg-Id"] % cid
        subject = f"{run}.{cid}"
        if good_body:
            return Hostile(
                "odd_header", f"{variant}+good", subject, _order(4), hdrs, COMPLETED, names.up, cid
            )
        return Hostile(
            "odd_header",
            f"{variant}+bad_body",
            subject,
            b"{not json",
            hdrs,
            DEAD,
            names.up,
            cid,
            "PoisonMessage",
            (NOT_JSON,),
        )

    return build
