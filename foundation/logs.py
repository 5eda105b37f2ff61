"""Log lines with context, secrets masked: the one logging set-up of every ``tracks`` process.

- **Step context.** The worker calls :func:`set_step` with the step's context object (anything
  with ``correlation_id``, ``track``, ``attempt`` and ``trace_id`` attributes, e.g. a
  ``TrackContext``) when a message's task starts: one contextvar set per step, nothing else on
  the hot path. :class:`ContextFilter` reads it only when a record is emitted and adds ``cid``,
  ``track``, ``attempt`` and ``trace_id`` to the record (values given by ``extra`` win).
- **Text** (default): ``time LEVEL logger: message`` and, when known,
  `` cid=… track=… attempt=… trace=…``.
- **JSON** (``TRACKS_LOG_FORMAT=json``): one object per line with ``time`` (ISO-8601 UTC),
  ``level``, ``logger``, ``message``, ``cid``, ``track``, ``attempt``, ``traceId`` and ``exc``
  (the traceback) when there is one.
- **Masking.** Both formatters pass their output through :func:`foundation.redact.mask_secrets`:
  ``scheme://user:password@`` never reaches a log line, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

from foundation.redact import mask_secrets

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "StepInfo",
    "TextFormatter",
    "configure_logging",
    "current_step",
    "set_step",
]

_FIELDS = ("cid", "track", "attempt", "trace_id")


class StepInfo(Protocol):
    correlation_id: str
    track: str
    attempt: int
    trace_id: str | None


_step: ContextVar[StepInfo | None] = ContextVar("tracks_step", default=None)


def set_step(step: StepInfo | None) -> None:
    """The step the current task runs (each message runs in its own task: no reset needed).

    The object is read when a record is emitted, so an attempt or trace ID set later in the
    step (the claim, the tracing middleware) is what the line shows.
    """
    _step.set(step)


def current_step() -> StepInfo | None:
    return _step.get()


class ContextFilter(logging.Filter):
    """Adds ``cid``, ``track``, ``attempt``, ``trace_id`` to every record (``None`` when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        step = _step.get()
        values = record.__dict__
        if "cid" not in values:
            cid = values.get("correlation_id")  # what ctx.log passes as extra
            values["cid"] = cid if cid is not None else (step.correlation_id if step else None)
        if "track" not in values:
            values["track"] = step.track if step else None
        if "attempt" not in values:
            values["attempt"] = step.attempt if step else None
        if "trace_id" not in values:
            values["trace_id"] = step.trace_id if step else None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{'trace' if key == 'trace_id' else key}={value}"
            for key in _FIELDS
            if (value := record.__dict__.get(key)) is not None
        )
        if context:
            head, sep, tail = text.partition("\n")  # after the message, before a traceback
            text = f"{head} {context}{sep}{tail}"
        return mask_secrets(text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        values = record.__dict__
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
            "cid": values.get("cid"),
            "track": values.get("track"),
            "attempt": values.get("attempt"),
            "traceId": values.get("trace_id"),
        }
        if record.exc_info:
            line["exc"] = mask_secrets(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = mask_secrets(record.exc_text)
        return json.dumps(line, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a test runner swaps it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: int | str = logging.WARNING, fmt: str | None = None) -> logging.Handler:
    """One stderr handler on the root logger (replacing any earlier one of ours), text or JSON.

    ``fmt``: ``text`` | ``json``; default ``TRACKS_LOG_FORMAT`` (``text``). ``level``:
    ``TRACKS_LOG_LEVEL`` wins when set.
    """
    chosen = (fmt or os.environ.get("TRACKS_LOG_FORMAT") or "text").strip().lower()
    if chosen not in ("text", "json"):
        raise ValueError(f"TRACKS_LOG_FORMAT={chosen} is not a log format: use text or json")
    handler = _StderrHandler()
    handler.set_name("tracks")
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "tracks"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get("TRACKS_LOG_LEVEL") or level)
    return handler
