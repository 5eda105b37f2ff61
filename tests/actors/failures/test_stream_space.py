"""Every stream is bounded (bytes and age, discard=new) and the ``stream_space`` alert fires before full.

Copies of the project's stream definitions under test names, so the suite's shared ``TRACKS``
stays as it is.
"""

from __future__ import annotations

import dataclasses

import pytest
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StreamConfig
from nats.js.errors import APIError

from actors.failures.alerts import STREAM_SPACE, check, load_alert_settings
from actors.failures.stream_space import stream_space
from actors.transport.payloads import PayloadStore
from foundation.settings import Settings
from subjects import DLQ_STREAM, STREAM
from subjects.streams import (
    DLQ_MAX_BYTES,
    PAYLOADS_MAX_BYTES,
    TRACKS_MAX_BYTES,
    dlq_stream,
    ensure_streams,
    tracks_stream,
)


def _renamed(config: StreamConfig, unique: str) -> StreamConfig:
    return dataclasses.replace(config, name=f"SPACE_{unique}", subjects=[f"space{unique}.>"])


async def test_defaults_bound_every_stream(js: JetStreamContext, settings: Settings) -> None:
    """TRACKS and DLQ as the suite created them: bounded in bytes, discard=new; the settings
    default to the same bounds."""
    assert (settings.stream_max_bytes, settings.dlq_max_bytes, settings.payload_max_bytes) == (
        TRACKS_MAX_BYTES,
        DLQ_MAX_BYTES,
        PAYLOADS_MAX_BYTES,
    )
    for name, limit in ((STREAM, TRACKS_MAX_BYTES), (DLQ_STREAM, DLQ_MAX_BYTES)):
        config = (await js.stream_info(name)).config
        assert (config.max_bytes, config.discard) == (limit, DiscardPolicy.NEW), name
        assert config.max_age and config.max_age > 0


async def test_an_unbounded_stream_is_reconciled(js: JetStreamContext, unique: str) -> None:
    """A stream left from before (no max_bytes, discard=old) gets the bound and discard=new at start."""
    old = _renamed(tracks_stream(max_age_s=3600, duplicate_window_s=60), unique)
    await js.add_stream(dataclasses.replace(old, max_bytes=-1, discard=DiscardPolicy.OLD))
    try:
        await ensure_streams(js, dataclasses.replace(old, max_bytes=1 << 20))
        config = (await js.stream_info(old.name or "")).config
        assert (config.max_bytes, config.discard) == (1 << 20, DiscardPolicy.NEW)
    finally:
        await js.delete_stream(old.name or "")


async def test_full_stream_refuses_and_alerts_first(js: JetStreamContext, unique: str) -> None:
    """At 80 % of max_bytes the alert fires; once full, a publish fails loudly and nothing that
    was stored is dropped (discard=new)."""
    config = _renamed(dlq_stream(max_age_s=3600, max_bytes=16 * 1024), unique)
    name = config.name or ""
    await ensure_streams(js, config)
    try:
        assert await stream_space(js, 0.8, [name]) == []
        body = b"x" * 900
        sent, refused = 0, None
        for n in range(100):
            try:
                await js.publish(f"space{unique}.e", body, headers={"Nats-Msg-Id": f"{n}"})
            except APIError as exc:
                refused = exc
                break
            sent += 1
        assert refused is not None and "maximum bytes exceeded" in str(refused)
        state = (await js.stream_info(name)).state
        assert state.messages == sent and state.first_seq == 1  # the oldest is still there
        (reading,) = await stream_space(js, 0.8, [name])
        assert reading.used_bytes >= 0.8 * 16 * 1024 and reading.max_bytes == 16 * 1024
        assert "TRACKS_DLQ_MAX_BYTES" not in reading.message and name in reading.message
    finally:
        await js.delete_stream(name)


async def test_payload_store_is_bounded(js: JetStreamContext, unique: str) -> None:
    """The payload bucket is created with its max_bytes and reconciled when the setting changes."""
    bucket = f"SPACE_{unique}"
    await PayloadStore(js, bucket=bucket, max_bytes=1 << 20).ensure()
    try:
        config = (await js.stream_info(f"OBJ_{bucket}")).config
        assert (config.max_bytes, config.discard) == (1 << 20, DiscardPolicy.NEW)
        await PayloadStore(js, bucket=bucket, max_bytes=2 << 20).ensure()
        assert (await js.stream_info(f"OBJ_{bucket}")).config.max_bytes == 2 << 20
        await PayloadStore(js, bucket=bucket).ensure()  # no bound given: left as it is
        assert (await js.stream_info(f"OBJ_{bucket}")).config.max_bytes == 2 << 20
    finally:
        await js.delete_object_store(bucket)


async def test_check_reports_stream_space(js: JetStreamContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """``check`` (the runtime's monitor, ``tracks alerts check``) includes the stream-space alert:
    with a threshold of almost nothing, the shared TRACKS stream (it holds events) is reported."""
    monkeypatch.setenv("TRACKS_ALERT_STREAM_FULL", "0.0000001")
    monkeypatch.setenv("TRACKS_ALERT_DLQ_THRESHOLD", "1000000000")
    await js.publish("tracks.alerts.space-probe", b" " * 2048)  # >= 1e-7 of 10 GiB

    class NoRates:
        async def fetch(self, *_: object) -> list[object]:
            return []

    fired = await check(js, NoRates(), load_alert_settings())  # type: ignore[arg-type]
    space = [a for a in fired if a.name == STREAM_SPACE and a.key == STREAM]
    assert space and space[0].details["maxBytes"] == TRACKS_MAX_BYTES
    assert space[0].envelope().labels == {"alertname": "tracks_stream_space", "stream": STREAM}


async def test_a_bound_below_what_a_stream_holds_is_not_applied(js: JetStreamContext, unique: str) -> None:
    """A stream upgraded from unbounded that already holds more than the new bound keeps its old
    bound (a warning says so): over it, every publish would fail at once, with no alert first."""
    config = _renamed(dlq_stream(max_age_s=3600, max_bytes=-1), unique)
    name = config.name or ""
    await js.add_stream(dataclasses.replace(config, discard=DiscardPolicy.OLD))
    try:
        for n in range(20):
            await js.publish(f"space{unique}.e", b"x" * 1000, headers={"Nats-Msg-Id": f"{n}"})
        await ensure_streams(js, dataclasses.replace(config, max_bytes=4096))
        info = await js.stream_info(name)
        assert (info.state.messages, info.state.first_seq) == (20, 1)
        assert (info.config.max_bytes or -1) <= 0 and info.config.discard == DiscardPolicy.NEW
        await js.publish(f"space{unique}.e", b"x", headers={"Nats-Msg-Id": "after"})  # still accepted
        await ensure_streams(js, dataclasses.replace(config, max_bytes=1 << 20))  # room: applied
        assert (await js.stream_info(name)).config.max_bytes == 1 << 20
    finally:
        await js.delete_stream(name)
