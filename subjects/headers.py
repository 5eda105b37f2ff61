"""NATS header names this project reads and writes."""

__all__ = [
    "CORRELATION_ID",
    "MSG_ID",
    "PRIORITY",
    "TRACEPARENT",
    "TRACESTATE",
]

MSG_ID = "Nats-Msg-Id"
"""JetStream de-duplication key (within the stream's duplicate window)."""
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
CORRELATION_ID = "Tracks-Correlation-Id"
"""Optional: the correlation ID of a plain-JSON trigger (else the subject's, else generated)."""
PRIORITY = "Tracks-Priority"
"""``high`` | ``normal`` | ``low``: set on scheduler ticks; actors run higher priorities first."""
