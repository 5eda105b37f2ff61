"""A small HTTP server on ``TRACKS_HTTP_HOST:TRACKS_HTTP_PORT``: ``/metrics``, ``/healthz``, ``/readyz``.

- ``GET /metrics``: this process's registry in the Prometheus text format (:mod:`foundation.metrics`).
- ``GET /healthz``: 200 whenever it answers: it is served by the process's event loop itself.
- ``GET /readyz``: 200 when the owner's readiness check finds nothing missing; otherwise 503 with
  ``{"status": "not ready", "notReady": {"nats": "why", ...}}``.

It runs on the owner's event loop (``asyncio.start_server``) and reads no more of a request than
its request line and headers; each connection answers one request and closes. Slow or silent
clients are dropped after a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from foundation import metrics

__all__ = ["ProbeServer", "Readiness"]

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[dict[str, str]]]
"""What is not ready, by component (``{"nats": "not connected"}``); empty: ready."""

_READ_TIMEOUT_S = 5.0
_READY_TIMEOUT_S = 5.0
_MAX_HEADER_LINES = 100
_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    400: "Bad Request",
    503: "Service Unavailable",
}


class ProbeServer:
    def __init__(self, host: str, port: int, readiness: Readiness) -> None:
        self.host = host
        self.port = port
        self._readiness = readiness
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        except OSError as exc:
            raise OSError(
                f"cannot serve /metrics on {self.host}:{self.port} ({exc.strerror or exc}): "
                "set TRACKS_HTTP_PORT to a free port, or unset it"
            ) from None
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        log.info("serving /metrics, /healthz and /readyz on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body = await asyncio.wait_for(self._answer(reader), _READ_TIMEOUT_S * 2)
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            status, content_type, body = 400, "text/plain; charset=utf-8", b"bad request\n"
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode("latin-1") + body)
            await asyncio.wait_for(writer.drain(), _READ_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as exc:
            log.debug("probe client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        request = (await asyncio.wait_for(reader.readline(), _READ_TIMEOUT_S)).decode("latin-1").split()
        for _ in range(_MAX_HEADER_LINES):  # headers: read and ignored
            if (await asyncio.wait_for(reader.readline(), _READ_TIMEOUT_S)).strip() == b"":
                break
        if len(request) != 3:
            raise ValueError("not an HTTP request line")
        method, target = request[0], request[1].split("?", 1)[0]
        if method != "GET":
            return 405, "text/plain; charset=utf-8", b"only GET\n"
        if target == "/metrics":
            return 200, metrics.CONTENT_TYPE, metrics.exposition()
        if target == "/healthz":
            return 200, "application/json", b'{"status": "ok"}\n'
        if target == "/readyz":
            try:
                missing = await asyncio.wait_for(self._readiness(), _READY_TIMEOUT_S)
            except Exception as exc:
                missing = {"readiness": f"the check failed: {type(exc).__name__}: {exc}"}
            if not missing:
                return 200, "application/json", b'{"status": "ready"}\n'
            body = json.dumps({"status": "not ready", "notReady": missing}).encode() + b"\n"
            return 503, "application/json", body
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n"
