"""An in-process OTLP/HTTP trace receiver (what Jaeger listens for on :4318), and span helpers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["Collector", "attrs"]


class Collector:
    """Decodes each ``ExportTraceServiceRequest`` POSTed to ``endpoint`` and keeps its spans."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.requests = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.requests += 1
                for resource_spans in request.resource_spans:
                    collector.services |= {
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    }
                    for scope_spans in resource_spans.scope_spans:
                        collector.spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self.endpoint = f"{self.base}/v1/traces"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def attrs(span: Any) -> dict[str, Any]:
    """An OTLP span's attributes as a plain dict."""
    return {a.key: next(iter(a.value.ListFields()))[1] for a in span.attributes}
