"""The CLI's own spans reach the exporter the OTEL_* variables name, flushed before it exits."""

from __future__ import annotations

import pytest

from tests.support.cli import run_tracks
from tests.support.otlp import Collector, attrs


async def test_tracks_trigger_exports_its_publish_span_and_falls_back_from_grpc(
    servers, js, unique, monkeypatch: pytest.MonkeyPatch
):
    collector = Collector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")  # the suite has no tracks[grpc]
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    cid = f"{unique}-cli"
    try:
        done = await run_tracks(servers, "trigger", f"{unique}-solo", "--correlation-id", cid)
    finally:
        collector.close()
    assert done.code == 0, done.err
    warnings = [line for line in done.err.splitlines() if "tracks[grpc]" in line]
    assert len(warnings) == 1 and "pip install 'tracks[grpc]'" in warnings[0], done.err
    (span,) = [s for s in collector.spans if attrs(s).get("messaging.message.conversation_id") == cid]
    assert span.name == f"publish tracks.{unique}-solo.run"
    assert attrs(span)["messaging.destination.name"] == f"tracks.{unique}-solo.run.{cid}"
    assert attrs(span)["messaging.message.id"] == f"{cid}:{unique}-solo:run"
    assert collector.services == {"tracks-cli"}
