"""Alerts to a webhook (``TRACKS_ALERT_WEBHOOK_URL``): Alertmanager-compatible JSON, never in the way.

Each alert the runtime publishes (and that no replica published first) is also POSTed as a JSON
list of one Alertmanager alert (``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL``; see :meth:`subjects.alerts.AlertEnvelope.to_alertmanager`; credentials in the
URL are sent as HTTP Basic auth), so Alertmanager's
``/api/v2/alerts`` or any receiver taking that shape works. Delivery runs in the background with
a short timeout (``TRACKS_ALERT_WEBHOOK_TIMEOUT_S``); a failure is logged (URL masked), never
raised; at most :data:`MAX_PENDING` deliveries wait at once, further alerts are dropped with a
warning rather than piling up.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import urllib.error
import urllib.parse
import urllib.request

from foundation.redact import mask_url
from subjects.alerts import AlertEnvelope
from subjects.jsonwire import dumpb

__all__ = ["MAX_PENDING", "AlertWebhook"]

log = logging.getLogger(__name__)

MAX_PENDING = 32


class AlertWebhook:
    def __init__(self, url: str, *, timeout_s: float = 3.0, resolve_after_s: float = 300.0) -> None:
        self.url = url
        self._target, self._headers = _split_credentials(url)
        self.timeout_s = timeout_s
        self.resolve_after_s = resolve_after_s
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def send(self, alert: AlertEnvelope) -> None:
        """Start delivering ``alert``; returns at once (call from the event loop)."""
        if len(self._tasks) >= MAX_PENDING:
            self.dropped += 1
            log.warning("alert webhook: %d deliveries pending; dropped %s", len(self._tasks), alert.kind)
            return
        body = dumpb([alert.to_alertmanager(resolve_after_s=self.resolve_after_s)])
        task = asyncio.get_running_loop().create_task(self._deliver(alert.kind, body), name="alert-webhook")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, kind: str, body: bytes) -> None:
        try:
            status = await asyncio.to_thread(self._post, body)
        except Exception as exc:
            self.failed += 1
            reason = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else f"{exc}"
            log.warning("alert webhook %s: %s not delivered (%s)", mask_url(self.url), kind, reason)
            return
        self.sent += 1
        log.debug("alert webhook %s: %s delivered (HTTP %d)", mask_url(self.url), kind, status)

    def _post(self, body: bytes) -> int:
        request = urllib.request.Request(self._target, data=body, method="POST", headers=self._headers)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return int(response.status)

    async def close(self) -> None:
        """Wait for deliveries under way (each bounded by the timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``https://user:secret@host/path`` → the URL without them, and a Basic Authorization header."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if parts.username is None:
        return url, headers
    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), headers
