"""A step whose completion was recorded but whose event NATS would not take (a JetStream cluster
electing a new stream leader answers "no responders"): one WARNING line, no traceback, the
message left unacked; its redelivery announces what the ledger recorded, without running again."""

from __future__ import annotations

import json
import logging

import asyncpg
import nats.errors
import pytest
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

from actors import TrackContext, Workflow
from foundation.settings import Settings
from tests.support.harness import FakeMsg, Harness


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (NoStreamResponseError(), "NoStreamResponseError"),
        (nats.errors.TimeoutError(), "TimeoutError"),
        # a leader cut off from its peers still deciding an earlier try of the same message
        (
            APIError(code=409, err_code=10158, description="duplicate message id is in process"),
            "APIError: duplicate message id is in process",
        ),
    ],
)
async def test_an_announcement_nats_refuses_is_one_warning_and_left_to_redelivery(
    pool: asyncpg.Pool,
    settings: Settings,
    unique: str,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    said: str,
) -> None:
    wf = Workflow(f"wf-{unique}")
    track, cid = f"{unique}-a", f"{unique}-1"
    runs: list[int] = []

    @wf.track(track)
    async def a(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        runs.append(ctx.attempt)
        return {"ok": True}

    def msg(delivered: int) -> FakeMsg:
        return FakeMsg(
            f"tracks.{track}.run.{cid}", json.dumps({}).encode(), seq=1, delivered=delivered, track=track
        )

    async with Harness(wf[track], pool, settings) as h:
        recording = h.publisher.publish

        async def leaderless(
            subject: str, body: bytes, hdrs: dict[str, str], *, stream: str | None = None
        ) -> PubAck:
            raise error

        h.publisher.publish = leaderless  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="actors.runtime.worker"):
            first = await h.deliver(msg(1))
        h.publisher.publish = recording  # type: ignore[method-assign]
        again = await h.deliver(msg(2))

    assert first.settlement is None  # unacked: redelivered after ack_wait
    [line] = [r for r in caplog.records if r.name == "actors.runtime.worker"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert "NATS did not answer while settling" in line.getMessage()
    assert f"({said})" in line.getMessage()
    assert again.settlement == "ack"
    assert runs == [1]  # the redelivery announced the recorded outcome; the handler ran once
    assert sorted(h.publisher.subjects()) == [
        f"tracks.{track}.completed.{cid}",
        f"tracks.workflow.wf-{unique}.completed.{cid}",
    ]
