"""An in-process OTLP/HTTP metrics receiver (``POST /v1/metrics``): keeps the latest data points."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

__all__ = ["MetricsReceiver"]

Key = tuple[str, tuple[tuple[str, str], ...]]


class MetricsReceiver:
    """``points[(metric name, sorted attributes)]``: the last number (sum, gauge) or histogram point."""

    def __init__(self) -> None:
        self.points: dict[Key, Any] = {}
        self.kinds: dict[str, str] = {}
        self.services: set[str] = set()
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportMetricsServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.keep(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}/v1/metrics"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def keep(self, request: ExportMetricsServiceRequest) -> None:
        self.requests += 1
        for rm in request.resource_metrics:
            for a in rm.resource.attributes:
                if a.key == "service.name":
                    self.services.add(a.value.string_value)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    self.kinds[metric.name] = kind
                    for point in getattr(metric, kind).data_points:
                        labels = tuple(sorted((a.key, a.value.string_value) for a in point.attributes))
                        self.points[(metric.name, labels)] = (
                            point if kind == "histogram" else point.as_double or point.as_int
                        )

    def value(self, name: str, **labels: str) -> Any:
        return self.points.get((name, tuple(sorted(labels.items()))))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
