"""Triggers no track can ever consume (a correlation ID with a dot) are dead-lettered at once, naming
the subject; they no longer sit in the stream unconsumed."""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, Workflow
from actors.failures import dlq_ops as letters
from foundation.settings import Settings
from tests.support.records import stream_subjects
from tests.support.waiting import eventually


async def test_a_trigger_whose_correlation_id_has_a_dot_is_dead_lettered_naming_its_subject(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    track = f"{unique}-t"
    wf = Workflow(f"wf-{unique}")

    @wf.track(track)
    async def t(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    async with Runtime(list(wf), settings=settings):
        await js.publish(f"tracks.{track}.run.a.b", b"{}")
        await js.publish(f"tracks.{track}.run.{unique}-ok", b"{}")

        async def caught() -> bool:
            return len(await stream_subjects(js, "DLQ", f"dlq.{track}.*")) == 1

        await eventually(caught, timeout=20, what="the unroutable trigger to be dead-lettered")
    (letter,) = [letter async for letter in letters.letters(js, track)]
    assert letter.error_type == "UnroutableSubject"
    assert f"tracks.{track}.run.a.b" in (letter.error or "")
    assert letter.original_subject == f"tracks.{track}.run.a.b"
    assert letter.deliveries == 1
    status = await pool.fetchval(
        "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2", f"{unique}-ok", track
    )
    assert status == "completed"
