"""Non-ASCII header values read back from a stream: plain text everywhere, and ``tracks dlq`` works.

nats.py parses the headers of a message fetched with ``STREAM.MSG.GET`` with ``email.parser``,
which gives an ``email.header.Header`` (not a ``str``) for a value with non-ASCII bytes.
"""

from __future__ import annotations

import json
from email.header import Header
from email.parser import BytesParser

import asyncpg
from nats.js import JetStreamContext

from actors import PermanentError, Runtime, TrackContext, Workflow
from foundation.settings import Settings
from subjects import headers
from tests.conftest import Servers
from tests.support.cli import run_tracks
from tests.support.records import step_statuses, stream_subjects
from tests.support.waiting import eventually

CUSTOMER = "Müller & Søn — 日本 ✓"
REASON = "Rechnung abgelehnt: ungültige Steuernummer (¥ 1 200)"


def test_plain_decodes_email_header_objects() -> None:
    raw = (
        "Tracks-Error: " + REASON + "\r\nX-Customer: " + CUSTOMER + "\r\n"
        "X-Ascii: plain value\r\nX-Word: =?utf-8?q?caf=C3=A9?= \u00e9\r\nX-Bad: a\udcff b\r\n\r\n"
    ).encode("utf-8", "surrogateescape")
    parsed = dict(BytesParser().parsebytes(raw).items())
    assert isinstance(parsed["X-Customer"], Header)  # what nats.py hands over

    plain = headers.plain(parsed)
    assert plain == {
        "Tracks-Error": REASON,
        "X-Customer": CUSTOMER,
        "X-Ascii": "plain value",
        "X-Word": "=?utf-8?q?caf=C3=A9?= é",  # NATS headers are not e-mail: no RFC 2047 decoding
        "X-Bad": "a\ufffd b",  # invalid UTF-8 is replaced, not an error
    }
    assert all(type(v) is str for v in plain.values())
    assert headers.plain(None) == {}
    assert headers.plain({"A": Header("é", "latin-1")}) == {"A": "é"}


async def test_plain_on_a_message_read_back_from_a_stream(js: JetStreamContext, unique: str) -> None:
    ack = await js.publish(
        f"tracks.{unique}.run.c1", b"{}", headers={"X-Customer": CUSTOMER, "X-Ascii": "plain"}
    )
    stored = await js.get_msg("TRACKS", ack.seq)
    assert not isinstance((stored.headers or {})["X-Customer"], str)  # the nats.py behaviour worked around
    assert headers.plain(stored.headers) == {"X-Customer": CUSTOMER, "X-Ascii": "plain"}


BROKEN: set[str] = set()
SEEN: dict[str, str] = {}


def invoicing(prefix: str) -> Workflow:
    wf = Workflow(f"hdr-{prefix}")

    @wf.track(f"{prefix}-invoice")
    async def invoice(ctx: TrackContext, job: dict[str, int]) -> dict[str, int]:
        if ctx.track in BROKEN:
            raise PermanentError(REASON)
        SEEN[ctx.correlation_id] = ctx.headers.get("X-Customer", "")
        return job

    return wf


async def test_dlq_ls_show_and_replay_with_non_ascii_headers(
    settings: Settings, servers: Servers, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A trigger with a non-ASCII header fails with a non-ASCII reason: ``ls`` and ``show`` print
    both as text, and ``replay`` (which re-publishes the original headers) runs the step again,
    the handler seeing the header as it was first sent."""
    track, cid = f"{unique}-invoice", f"{unique}-inv"
    BROKEN.add(track)
    async with Runtime(list(invoicing(unique)), settings=settings):
        await js.publish(f"tracks.{track}.run.{cid}", b'{"n": 7}', headers={"X-Customer": CUSTOMER})

        async def dead() -> bool:
            return len(await stream_subjects(js, "DLQ", f"dlq.{track}.*")) >= 1

        await eventually(dead, timeout=30, what="the dead letter")
        seq = (await js.get_last_msg("DLQ", f"dlq.{track}.{cid}")).seq
        assert seq is not None

        listed = await run_tracks(servers, "dlq", "ls", "--track", track, "--json")
        assert listed.code == 0, listed
        [summary] = [json.loads(line) for line in listed.out.splitlines()]
        assert summary["error"] == REASON and summary["correlationId"] == cid

        table = await run_tracks(servers, "dlq", "ls", "--track", track)
        assert table.code == 0, table
        assert REASON in table.out

        shown = await run_tracks(servers, "dlq", "show", str(seq))
        assert shown.code == 0, shown
        assert f"X-Customer: {CUSTOMER}" in shown.out
        assert f"Tracks-Error: {REASON}" in shown.out

        BROKEN.discard(track)
        replayed = await run_tracks(servers, "dlq", "replay", str(seq))
        assert replayed.code == 0, replayed
        assert replayed.out.startswith(f"{seq} → tracks.{track}.run.{cid}")

        async def completed() -> bool:
            return (await step_statuses(pool, track)).get(cid) == "completed"

        await eventually(completed, timeout=30, what="the replayed step")
    assert SEEN[cid] == CUSTOMER
