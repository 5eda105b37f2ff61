"""Envelope strategies: TrackEvent envelopes sent as triggers on the upstream's run subject, good
ones and ones with one bad field. :func:`_envelope` writes them by hand (escapes go on the wire as
given); it and the bad correlation IDs serve forged events and the pinned cases too.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from tests.support.hostile.builders import Build, _Names, pick
from tests.support.hostile.verdicts import (
    CID,
    COMPLETED,
    DEAD,
    ENVELOPE,
    NESTED,
    NON_FINITE,
    NUL,
    SCHEMA,
    SURROGATE,
    UNDECODABLE,
    USER_ID,
    WORKFLOW,
    Hostile,
)

_BAD_WORKFLOWS = ["x y", "*", ">", "a.b", "wf\n", "", "\u00e9", "w" * 129, "a\tb"]
_BAD_USER_IDS = ["a\\u0000b", "u" * 10_000, "a\nb", "a\x7fb", "\\ud800"]
_BAD_CIDS = ["a b", "a.b", "*", ">", "", "x" * 129, "c\n", "\u00e9", "%", "~", "c\r\n", "\t"]


def _envelope(
    track: str,
    cid: str,
    *,
    payload: str = '{"n": 1}',
    event_type: str = "started",
    workflow: str | None = None,
    user_id: str | None = None,
    raw_metadata: str | None = None,
) -> bytes:
    """Written by hand, not by json.dumps: escapes (``\\u0000``) go on the wire as given."""
    if raw_metadata is None:
        parts = [f'"correlationId": {_js(cid)}', f'"sourceTrack": {_js(track)}']
        if workflow is not None:
            parts.append(f'"workflow": {_js(workflow)}')
        if user_id is not None:
            parts.append(f'"userId": "{user_id}"')  # already escaped as wanted
        raw_metadata = "{" + ", ".join(parts) + "}"
    text = (
        f'{{"trackId": {_js(track)}, "eventType": {_js(event_type)}, "payload": {payload}, '
        f'"metadata": {raw_metadata}}}'
    )
    return text.encode()


def _js(text: str) -> str:
    return json.dumps(text)


_ENVELOPE_VARIANTS = (
    "good",
    "good_workflow",
    "good_no_subject_cid",
    "schema",
    "workflow",
    "user_id",
    "cid",
    "shape",
    "payload_non_finite",
    "payload_deep",
)
_SHAPES = ("event_type", "metadata_list", "no_source", "extra_key", "payload_list")


@st.composite
def envelope(draw: st.DrawFn) -> Build:
    """Envelope triggers on the upstream's run subject (bodies starting ``{"trackId":`` take the
    decoder's fast path)."""
    variant = draw(pick(_ENVELOPE_VARIANTS))
    with_subject_cid = variant != "good_no_subject_cid" and (
        variant.startswith("good") or draw(st.booleans())
    )
    if variant == "workflow":
        bad = draw(pick(_BAD_WORKFLOWS))
    elif variant == "user_id":
        bad = draw(pick(_BAD_USER_IDS))
    elif variant == "cid":
        bad = draw(pick(_BAD_CIDS))
    elif variant == "shape":
        bad = draw(pick(_SHAPES))
    elif variant == "payload_non_finite":
        bad = draw(pick(["1e400", "-1e400", "9" * 310 + ".5"]))
    elif variant == "payload_deep":
        bad = str(draw(pick([120, 150, 200, 248, 260, 1000])))
    else:
        bad = ""

    def build(names: _Names) -> Hostile:
        subject_cid = names.cid("envelope")
        meta_cid = names.cid("envelope")
        subject = f"tracks.{names.up}.run.{subject_cid}" if with_subject_cid else f"tracks.{names.up}.run"
        up = names.up

        def ends(body: bytes, expect: str, cid: str | None, reasons: tuple[str, ...] = ()) -> Hostile:
            label = f"{variant}:{bad[:10]!r}" if bad else variant
            error_type = "PoisonMessage" if expect == DEAD else None
            return Hostile("envelope", label, subject, body, None, expect, up, cid, error_type, reasons)

        if variant in ("good", "good_no_subject_cid"):
            return ends(_envelope(up, meta_cid, user_id="user-\u00e9"), COMPLETED, meta_cid)
        if variant == "good_workflow":
            return ends(_envelope(up, meta_cid, workflow=names.pair.name), COMPLETED, meta_cid)
        if variant == "schema":  # a good envelope whose payload Order refuses: the step fails
            return ends(_envelope(up, meta_cid, payload='{"n": "1"}'), DEAD, meta_cid, (SCHEMA,))
        # bad envelopes: filed under the subject's ID, else one derived from the message
        fallback = subject_cid if with_subject_cid else None
        if variant == "workflow":
            return ends(_envelope(up, meta_cid, workflow=bad), DEAD, fallback, (WORKFLOW,))
        if variant == "user_id":
            body = _envelope(up, meta_cid, user_id=bad.replace("\n", "\\n"))
            return ends(body, DEAD, fallback, (USER_ID, NUL, SURROGATE))
        if variant == "cid":
            return ends(_envelope(up, bad), DEAD, fallback, (CID,))
        if variant == "payload_non_finite":
            # the step's payload holds a number PostgreSQL's jsonb cannot store
            body = _envelope(up, meta_cid, payload='{"n": 1, "x": ' + bad + "}")
            return ends(body, DEAD, fallback, NON_FINITE)
        if variant == "payload_deep":
            depth = int(bad)
            body = _envelope(up, meta_cid, payload='{"x": ' + "[" * depth + "]" * depth + "}")
            if depth + 2 <= 200:  # within the decoder's limit: Order refuses it, the step fails
                return ends(body, DEAD, meta_cid, (SCHEMA,))
            return ends(body, DEAD, fallback, (NESTED, UNDECODABLE))
        if bad == "event_type":
            body = _envelope(up, meta_cid, event_type="exploded")
        elif bad == "metadata_list":
            body = _envelope(up, meta_cid, raw_metadata="[1, 2]")
        elif bad == "no_source":
            body = _envelope(up, meta_cid, raw_metadata=f'{{"correlationId": "{meta_cid}"}}')
        elif bad == "extra_key":
            body = _envelope(up, meta_cid)[:-1] + b', "surprise": 1}'
        else:
            body = _envelope(up, meta_cid, payload="[1, 2]")
        return ends(body, DEAD, fallback, (ENVELOPE,))

    return build
