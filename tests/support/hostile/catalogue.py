"""The catalogue: one strategy per message class (:func:`_by_kind`), the pinned cases every batch
holds whatever the seed, and :func:`hostile_messages`, which draws a seeded batch of them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.support.apps.fuzz_workflow import FuzzPair
from tests.support.hostile.bodies import (
    bom_encoding,
    broken_json,
    deep_nesting,
    huge_body,
    huge_int,
    nan_inf,
    non_object,
    nul_surrogate,
    random_bytes,
)
from tests.support.hostile.builders import Build, _dead, _good, _Names, _order, ints, notes
from tests.support.hostile.envelopes import _envelope, envelope
from tests.support.hostile.forged import forged_event, forged_ref
from tests.support.hostile.subjects_headers import odd_header, odd_subject
from tests.support.hostile.verdicts import CID, DEAD, KINDS, NESTED, NON_FINITE, NOT_JSON, WORKFLOW, Hostile


def good() -> st.SearchStrategy[Build]:
    return st.tuples(ints, notes).map(lambda t: _good("good", "order", _order(t[0], t[1])))


def _by_kind() -> dict[str, st.SearchStrategy[Build]]:
    return {
        "random_bytes": random_bytes(),
        "broken_json": broken_json(),
        "non_object": non_object(),
        "deep_nesting": deep_nesting(),
        "huge_int": huge_int(),
        "nan_inf": nan_inf(),
        "nul_surrogate": nul_surrogate(),
        "bom_encoding": bom_encoding(),
        "huge_body": huge_body(),
        "envelope": envelope(),
        "odd_subject": odd_subject(),
        "odd_header": odd_header(),
        "forged_event": forged_event(),
        "forged_ref": forged_ref(),
        "good": good(),
    }


def _pinned_envelope(variant: str, expect_reasons: tuple[str, ...], **fields: str) -> Build:
    """An envelope trigger with one bad field, on ``tracks.<up>.run.<cid>``: dead, filed under ``cid``."""

    def build(names: _Names) -> Hostile:
        cid = names.cid("pinned")
        meta_cid = fields.get("cid", names.cid("pinned"))
        body = _envelope(
            names.up,
            meta_cid,
            payload=fields.get("payload", '{"n": 1}'),
            workflow=fields.get("workflow"),
            raw_metadata=fields.get("raw_metadata"),
        )
        subject = f"tracks.{names.up}.run.{cid}"
        return Hostile(
            "pinned", variant, subject, body, None, DEAD, names.up, cid, "PoisonMessage", expect_reasons
        )

    return build


def _pinned_forged_newline(names: _Names) -> Hostile:
    cid = names.cid("pinned")
    body = _envelope(names.up, "c\n", payload='{"n": 5}', event_type="completed")
    return Hostile(
        "pinned",
        "forged_event_cid_newline",
        f"tracks.{names.up}.completed.{cid}",
        body,
        None,
        DEAD,
        names.down,
        cid,
        "PoisonMessage",
        (CID,),
        forged=True,
    )


def _pinned() -> list[Build]:
    """Cases every batch holds, whatever the seed: the ones that once broke the rule."""
    deep = "[" * 300 + "]" * 300
    return [
        # a correlation ID / workflow / source track with a trailing newline passed
        # subjects.check_token (``$``): the step ran, then its subjects could not be published
        _pinned_envelope("envelope_cid_newline", (CID,), cid="c\n"),
        _pinned_envelope("envelope_workflow_newline", (WORKFLOW,), workflow="wf\n"),
        _pinned_envelope(
            "envelope_source_newline",
            ("metadata.sourcetrack",),
            raw_metadata='{"correlationId": "pinned-src", "sourceTrack": "up\\n"}',
        ),
        _pinned_forged_newline,
        # numbers out of a double's range: the ledger's jsonb refused "Infinity" on every retry
        _dead("pinned", "plain_1e400", b'{"n": 1, "x": 1e400}', NON_FINITE),
        _pinned_envelope("envelope_1e400", NON_FINITE, payload='{"n": 1, "x": -1e400}'),
        # nesting past the encoder's ~250 levels: the ledger's batch could not be encoded
        _dead("pinned", "plain_deep_300", ('{"n": 1, "x": ' + deep + "}").encode(), (NESTED,)),
        _pinned_envelope("envelope_deep_200", (NESTED,), payload='{"x": ' + "[" * 200 + "]" * 200 + "}"),
        # references naming no possible bucket: nats-py raised, and the trigger was retried
        _dead(
            "pinned",
            "ref_bucket_dot",
            b'{"$tracksRef": {"bucket": "a.b", "key": "k", "size": 1, "sha256": "0"}}',
            ("payload",),
        ),
        _dead(
            "pinned",
            "ref_bucket_newline",
            b'{"$tracksRef": {"bucket": "TRACKS_PAYLOADS\\n", "key": "k", "size": 1, "sha256": "0"}}',
            ("payload",),
        ),
        # nearly max_payload: the dead letter adds headers, and must not close the connection
        _dead(
            "pinned", "x_max_payload-300", lambda names, cid: b"x" * (names.max_payload - 300), (NOT_JSON,)
        ),
    ]


def hostile_messages(
    pair: FuzzPair, max_payload: int, count: int, *, seed_value: int, max_huge: int
) -> list[Hostile]:
    """``count`` messages drawn by hypothesis (seeded, no shrinking), at most ``max_huge`` of them
    near ``max_payload``; every example is one message of each class, so all are drawn equally.
    The :func:`_pinned` cases come first, in every batch."""
    strategies = _by_kind()
    drawn: list[Build] = []

    @seed(seed_value)
    @settings(
        max_examples=-(-count // (len(KINDS) - 1)),  # huge bodies are capped
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.tuples(*(strategies[kind] for kind in KINDS)))
    def collect(one_of_each: tuple[Build, ...]) -> None:
        drawn.extend(one_of_each)

    collect()
    names = _Names(pair, max_payload)
    messages = [build(names) for build in _pinned()]
    huge = 0
    for build in drawn:
        message = build(names)
        if message.huge:
            if huge >= max_huge:
                continue
            huge += 1
        messages.append(message)
    return messages
