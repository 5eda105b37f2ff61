"""``TRACKS_REDACT``: a hook decides what ``processing_logs`` and dead letters keep of payloads."""

from __future__ import annotations

import json

import pytest

from actors import PermanentError, Runtime, TrackContext, TracksClient, Workflow
from actors.ledger.redaction import load_redactor, redacted_body, redacted_details
from foundation.settings import Settings, SettingsError, load_settings
from tests.support.redaction import drop_card, not_a_dict
from tests.support.waiting import eventually


def _workflow(prefix: str) -> Workflow:
    wf = Workflow(f"redact-{prefix}")

    @wf.track(f"{prefix}-charge")
    async def charge(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return {**payload, "charged": True}

    @wf.track(f"{prefix}-book", after=[f"{prefix}-charge"])
    async def book(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        raise PermanentError("the ledger refuses this receipt")

    return wf


async def test_a_configured_hook_keeps_a_field_out_of_processing_logs_and_dead_letters(
    settings: Settings, pool, js, unique
) -> None:
    """The card number the trigger carried appears in no ``processing_logs`` row and not in the
    dead letter of the step that failed; the step's output (read back downstream) stays whole."""
    redacting = settings.model_copy(update={"redact": "tests.support.redaction:drop_card"})
    wf = _workflow(unique)
    charge, book = (t.name for t in wf)
    async with Runtime(list(wf), settings=redacting):
        cid, _ = await TracksClient(js).trigger(charge, {"card": "4111111111111111", "amount": 1200})

        async def dead_lettered() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT count(*) FROM processing_logs WHERE correlation_id = $1 AND track_id = $2 "
                    "AND event_type = 'failed'",
                    cid,
                    book,
                )
            )

        await eventually(dead_lettered, timeout=30, what="the failing step recorded")
    rows = await pool.fetch(
        "SELECT track_id, event_type, details::text AS d FROM processing_logs WHERE correlation_id = $1", cid
    )
    assert rows and not any("4111111111111111" in (r["d"] or "") for r in rows), rows
    payloads = [json.loads(r["d"])["payload"] for r in rows if r["d"] and "payload" in json.loads(r["d"])]
    assert {"amount": 1200, "redacted_for": charge} in payloads, payloads  # the input, as the hook kept it
    output = await pool.fetchval(
        "SELECT output::text FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, charge
    )
    assert "4111111111111111" in output  # downstream reads it back: not redacted
    letter = await js.get_last_msg("DLQ", f"dlq.{book}.{cid}")
    body = json.loads(letter.data)
    assert "4111111111111111" not in letter.data.decode()
    assert body["payload"] == {"amount": 1200, "charged": True, "redacted_for": book}


def test_without_a_hook_nothing_changes_and_a_bad_hook_keeps_nothing() -> None:
    """Unset: no hook at all. A hook that returns no dict stores a marker, never the payload."""
    assert load_redactor(None) is None
    details = {"subject": "s", "payload": {"card": "4111"}}
    assert redacted_details(drop_card, "t", details) == {"subject": "s", "payload": {"redacted_for": "t"}}
    assert details == {"subject": "s", "payload": {"card": "4111"}}, "the caller's object is left alone"
    assert redacted_details(not_a_dict, "t", details)["payload"] == {"redaction_failed": "str"}
    assert redacted_body(drop_card, "t", b'{"card": "4111", "n": 1}') == b'{"n":1,"redacted_for":"t"}'
    assert redacted_body(drop_card, "t", b"not json") == b"not json"


def test_a_hook_that_cannot_be_found_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^TRACKS_REDACT='tests\.support\.redaction:nope': .* 'nope'$"):
        load_redactor("tests.support.redaction:nope")
    with pytest.raises(SettingsError, match=r"^TRACKS_REDACT: 'not a spec' is not package\.module:function$"):
        load_settings(redact="not a spec")
