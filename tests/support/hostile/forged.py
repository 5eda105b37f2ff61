"""Forged events and forged payload references: completion events of the upstream for runs in which
it never ran (the downstream must never run), and plain triggers whose body is a claim-check
reference to nothing or to nowhere.
"""

from __future__ import annotations

import dataclasses
import json

from hypothesis import strategies as st

from tests.support.hostile.builders import Build, _dead, _Names, pick
from tests.support.hostile.envelopes import _BAD_CIDS, _envelope
from tests.support.hostile.verdicts import CID, DEAD, NOT_ENVELOPE, NOT_JSON, UNEXPECTED, UTF8, Hostile


@st.composite
def forged_event(draw: st.DrawFn) -> Build:
    """Completion events of the upstream for runs in which it never ran: the downstream must not run."""
    variant = draw(
        pick(["envelope", "other_cid", "odd_subject_cid", "plain_body", "bad_meta_cid", "garbage"])
    )
    bad = draw(pick(_BAD_CIDS))

    def build(names: _Names) -> Hostile:
        cid = names.cid("forged")
        other = names.cid("forged")
        up, down = names.up, names.down
        subject = f"tracks.{up}.completed.{cid}"
        payload = '{"n": 5}'
        if variant == "envelope":
            body = _envelope(up, cid, payload=payload, event_type="completed")
            return Hostile(
                "forged_event",
                variant,
                subject,
                body,
                None,
                DEAD,
                down,
                cid,
                "UnexpectedEvent",
                (UNEXPECTED,),
                forged=True,
            )
        if variant == "other_cid":  # the envelope's ID wins: neither ran
            body = _envelope(up, other, payload=payload, event_type="completed")
            return Hostile(
                "forged_event",
                variant,
                subject,
                body,
                None,
                DEAD,
                down,
                other,
                "UnexpectedEvent",
                (UNEXPECTED,),
                forged=True,
            )
        if variant == "odd_subject_cid":
            body = _envelope(up, cid, payload=payload, event_type="completed")
            return Hostile(
                "forged_event",
                variant,
                f"tracks.{up}.completed.{other}%7E",
                body,
                None,
                DEAD,
                down,
                cid,
                "UnexpectedEvent",
                (UNEXPECTED,),
                forged=True,
            )
        if variant == "plain_body":
            return Hostile(
                "forged_event",
                variant,
                subject,
                b'{"n": 5}',
                None,
                DEAD,
                down,
                cid,
                "PoisonMessage",
                (NOT_ENVELOPE,),
                forged=True,
            )
        if variant == "bad_meta_cid":
            body = _envelope(up, bad, payload=payload, event_type="completed")
            return Hostile(
                "forged_event",
                f"{variant}:{bad[:6]!r}",
                subject,
                body,
                None,
                DEAD,
                down,
                cid,
                "PoisonMessage",
                (CID,),
                forged=True,
            )
        return Hostile(
            "forged_event",
            variant,
            subject,
            b"\x00\xff garbage",
            None,
            DEAD,
            down,
            cid,
            "PoisonMessage",
            (UTF8, NOT_JSON),
            forged=True,
        )

    return build


@st.composite
def forged_ref(draw: st.DrawFn) -> Build:
    """Plain triggers whose body is a claim-check reference to nothing (or to nowhere)."""
    bucket, key = draw(
        pick(
            [
                ("TRACKS_PAYLOADS", "nobody/input.0"),
                ("TRACKS_PAYLOADS", "../../etc"),
                ("NO_SUCH_BUCKET", "k"),
                ("bad bucket", "k"),
                ("*", "k"),
                ("a.b", "k"),
                ("TRACKS_PAYLOADS\n", "k"),
                ("", "k"),
                ("TRACKS_PAYLOADS", ""),
            ]
        )
    )
    size = draw(pick([0, 10, -1]))
    body = json.dumps(
        {"$tracksRef": {"bucket": bucket, "key": key, "size": size, "sha256": "0" * 64}}
    ).encode()
    build = _dead("forged_ref", f"{bucket[:10]!r}/{key[:8]!r}/{size}", body, ("payload",))
    accepted = "PoisonMessage|PayloadMissing|PayloadCorrupt"  # the last two are PoisonMessage's kin

    def with_types(names: _Names) -> Hostile:
        return dataclasses.replace(build(names), error_type=accepted)

    return with_types
