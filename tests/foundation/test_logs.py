"""Log lines with context (cid, track, attempt, trace) and secrets masked, as text or JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from foundation.logs import ContextFilter, JsonFormatter, TextFormatter, configure_logging, set_step
from foundation.redact import mask_secrets
from foundation.settings import Settings, load_settings
from tests.support.waiting import eventually


@dataclass
class FakeStep:
    correlation_id: str = "cid-1"
    track: str = "ocr"
    attempt: int = 2
    trace_id: str | None = "ab" * 16


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("tracks.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A JSON-lines handler on the root logger, at INFO, as ``TRACKS_LOG_FORMAT=json`` sets up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_text_lines_carry_the_step_context_and_mask_secrets() -> None:
    async def in_a_step() -> logging.LogRecord:
        set_step(FakeStep())
        record = _record("cannot reach %s", "nats://user:password@h:4222")
        ContextFilter().filter(record)
        return record

    record = asyncio.run(in_a_step())
    line = TextFormatter().format(record)
    assert line.endswith(
        f"cannot reach nats://user:***@h:4222 cid=cid-1 track=ocr attempt=2 trace={'ab' * 16}"
    ), line
    outside = _record("no step here")
    ContextFilter().filter(outside)  # the step was set in another task: nothing leaks out of it
    assert TextFormatter().format(outside).endswith("tracks.test: no step here")


def test_json_lines_parse_with_every_field_and_the_traceback() -> None:
    record = _record("boom %d", 7, cid="c", track="t", attempt=1, trace_id="f" * 32)
    try:
        raise ValueError("postgresql://u:hunter2@db/x refused")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "tracks.test", "boom 7")
    assert (line["cid"], line["track"], line["attempt"], line["traceId"]) == ("c", "t", 1, "f" * 32)
    assert "ValueError" in line["exc"] and "hunter2" not in line["exc"]


def test_configure_logging_chooses_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        monkeypatch.setenv("TRACKS_LOG_FORMAT", "json")
        handler = configure_logging(logging.INFO)
        assert isinstance(handler.formatter, JsonFormatter)
        assert configure_logging(logging.INFO) is not handler
        assert sum(h.get_name() == "tracks" for h in root.handlers) == 1  # replaced, not added
        monkeypatch.setenv("TRACKS_LOG_FORMAT", "xml")
        with pytest.raises(ValueError, match="TRACKS_LOG_FORMAT"):
            configure_logging()
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def test_settings_never_show_their_secrets() -> None:
    settings = load_settings(
        nats_url="nats://u:hunter2@h:4222",
        nats_password="hunter3",
        database_url="postgresql://p:hunter4@db/x",
    )
    shown = repr(settings) + str(settings)
    assert not any(secret in shown for secret in ("hunter2", "hunter3", "hunter4")), shown
    assert "nats://u:***@h:4222" in shown and "nats_password='***'" in shown


def test_mask_secrets_covers_urls_tokens_and_dsn_keywords() -> None:
    assert mask_secrets("nats://a:b@h1:1,nats://c:d@h2:2") == "nats://a:***@h1:1,nats://c:***@h2:2"
    assert mask_secrets("nats://s3cr3t@h:4222") == "nats://***@h:4222"
    assert mask_secrets("postgresql://postgres@127.0.0.1:5/x") == "postgresql://postgres@127.0.0.1:5/x"
    assert mask_secrets("host=h password=pw user=u") == "host=h password=*** user=u"
    assert mask_secrets("https://h/x?token=abc&y=1") == "https://h/x?token=***&y=1"
    assert mask_secrets("nothing to hide") == "nothing to hide"


async def test_a_step_s_log_lines_and_the_runtime_s_carry_cid_track_attempt_trace(
    settings: Settings, migrated: None, js: JetStreamContext, unique: str, captured: io.StringIO
) -> None:
    """``ctx.log`` inside a handler and the runtime's own retry line, as JSON lines, both name the
    step: its correlation ID, track, attempt and trace ID."""
    wf = Workflow(f"logs-{unique}")
    track = f"{unique}-logged"
    seen: list[TrackContext] = []

    @wf.track(track, options=TrackOptions(retry_base_s=0.01, retry_cap_s=0.02, concurrency=1))
    async def handler(ctx: TrackContext, payload: dict[str, int]) -> dict[str, int]:
        seen.append(ctx)
        ctx.log.info("working on attempt %d", ctx.attempt)
        if len(seen) == 1:
            raise RuntimeError("flaky upstream")
        return payload

    async with Runtime(list(wf), settings=settings):
        cid, _ = await TracksClient(js).trigger(track, {"n": 1})
        await eventually(lambda: _async(len(seen) >= 2), what="the retry ran")
        await asyncio.sleep(0.2)

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    mine = [line for line in lines if line["cid"] == cid]
    own = [line for line in mine if line["logger"] == f"tracks.track.{track}"]
    assert [line["message"] for line in own] == ["working on attempt 1", "working on attempt 2"]
    for line, ctx in zip(own, seen, strict=True):
        assert (line["track"], line["attempt"], line["traceId"]) == (track, ctx.attempt, ctx.trace_id)
    retry = [line for line in mine if line["logger"].startswith("actors.") and "flaky" in line["message"]]
    assert retry, mine
    assert (retry[0]["track"], retry[0]["attempt"], retry[0]["traceId"]) == (track, 1, seen[0].trace_id)


async def _async(value: bool) -> bool:
    return value
