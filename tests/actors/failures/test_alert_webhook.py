"""Alerts to a webhook: Alertmanager-compatible JSON, short timeout, failures logged and never raised."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext

from actors.failures.alert_webhook import AlertWebhook
from actors.failures.alerts import AlertMonitor, load_alert_settings, webhook_from
from foundation.jetstream.publisher import EventPublisher
from subjects.alerts import AlertEnvelope, Severity
from tests.support.waiting import eventually
from tracks.embedded._process import free_port


@dataclass
class Receiver:
    url: str
    bodies: list[Any] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An in-process HTTP server that keeps every JSON body POSTed to it."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(state.delay_s)
            state.bodies.append((self.path, self.headers["Content-Type"], json.loads(body)))
            state.auth.append(self.headers.get("Authorization"))
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/v2/alerts"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _alert() -> AlertEnvelope:
    return AlertEnvelope(
        kind="failure_rate",
        severity=Severity.WARNING,
        summary="track ocr: 3 of 4 steps failed",
        labels={"alertname": "tracks_failure_rate", "track": "ocr"},
        source="host:1",
        details={"rate": 0.75},
    )


async def test_an_alert_is_posted_as_alertmanager_json(receiver: Receiver) -> None:
    hook = AlertWebhook(receiver.url, timeout_s=2, resolve_after_s=60)
    alert = _alert()
    hook.send(alert)
    await hook.close()
    [(path, content_type, body)] = receiver.bodies
    assert (path, content_type) == ("/api/v2/alerts", "application/json")
    [item] = body
    assert set(item) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert item["labels"] == {"alertname": "tracks_failure_rate", "severity": "warning", "track": "ocr"}
    assert item["annotations"]["summary"] == "track ocr: 3 of 4 steps failed"
    assert json.loads(item["annotations"]["details"]) == {"rate": 0.75}
    assert item["startsAt"] == alert.starts_at.isoformat()
    assert (hook.sent, hook.failed) == (1, 0)


async def test_failures_are_logged_never_raised_and_bounded(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500, a closed port, a receiver slower than the timeout: each is one warning (the URL's
    password masked); ``send`` returns at once and ``close`` waits at most about the timeout."""
    caplog.set_level(logging.WARNING, logger="actors.failures.alert_webhook")
    receiver.status = 500
    failing = AlertWebhook(receiver.url.replace("http://", "http://user:hunter2@"), timeout_s=2)
    closed = AlertWebhook(f"http://127.0.0.1:{free_port()}/hook", timeout_s=2)
    for hook in (failing, closed):
        hook.send(_alert())
        await hook.close()
        assert (hook.sent, hook.failed) == (0, 1)
    receiver.status, receiver.delay_s = 200, 3.0
    slow = AlertWebhook(receiver.url, timeout_s=0.3)
    began = time.monotonic()
    slow.send(_alert())
    assert time.monotonic() - began < 0.1  # never blocks the caller
    await slow.close()
    assert slow.failed == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "HTTP 500" in lines[0] and "hunter2" not in lines[0]
    assert receiver.auth == ["Basic dXNlcjpodW50ZXIy"]  # user:hunter2, sent as Basic auth
    assert all("not delivered" in line for line in lines)


async def test_the_monitor_posts_what_it_publishes_once_across_replicas(
    pool: asyncpg.Pool, js: JetStreamContext, unique: str, receiver: Receiver
) -> None:
    held = int((await js.stream_info("DLQ")).state.messages)
    await js.publish(f"dlq.{unique}-t.x", b"{}")
    settings = load_alert_settings(
        dlq_threshold=held,
        interval_s=10_000
        + int(unique, 16) % 10_000,  # a bucket of its own: no other test shares its Nats-Msg-Id
        min_events=1_000_000,
        webhook_url=receiver.url,
    )
    hook = webhook_from(settings)
    assert hook is not None
    try:
        replicas = [
            AlertMonitor(js, pool, EventPublisher(js), settings, [f"{unique}-t"], webhook=hook, source=name)
            for name in ("a", "b")
        ]
        for replica in replicas:
            await replica.check_once()
        await hook.close()
    finally:
        await js.purge_stream("DLQ", subject=f"dlq.{unique}-t.>")
    await eventually(lambda: _async(len(receiver.bodies) >= 1), what="the webhook call")
    await asyncio.sleep(0.1)
    [(_, _, [item])] = receiver.bodies
    assert item["labels"]["alertname"] == "tracks_dlq_backlog"
    assert item["annotations"]["source"] == "a"


async def _async(value: bool) -> bool:
    return value
