"""Tracing for the commands that start or continue runs (``run``, ``trigger``, ``proceed``, ``resume``).

The same ``OTEL_*`` variables as the actors: with an exporter configured, the command's own spans
(the run's start, the release of a gate, a resume) are exported into the run's trace, and
flushed before the process exits. Without one, spans are made but go nowhere (cheap).
"""

from __future__ import annotations

import atexit

from foundation import telemetry
from foundation.settings import Settings

__all__ = ["cli_tracing"]

_installed = False


def cli_tracing(settings: Settings) -> None:
    """Install the tracer once (service ``tracks-cli`` unless ``OTEL_SERVICE_NAME``); flush at exit."""
    global _installed
    if _installed:
        return
    _installed = True
    telemetry.configure_tracing("tracks-cli", lean_spans=settings.lean_spans)
    atexit.register(telemetry.shutdown_tracing)
