"""A redaction hook for what is kept about payloads: ``TRACKS_REDACT=package.module:function``.

``function(track, payload) -> dict`` is given a copy of each payload (a step's input, a
handler's output) before it is written to ``processing_logs.details`` and of each dead letter's
original body before it goes to the DLQ, and returns what to keep, e.g. without the fields that
are personal data. It is not applied to ``track_steps.output``, which downstream steps and
resumes read back, nor to the events on the TRACKS stream (they expire with its max age).

Unset, nothing here runs (the ledger checks ``is None`` once per batch). A hook that raises or
returns something other than a dict keeps nothing: the payload is replaced by
``{"redaction_failed": "<error type>"}`` and the error logged; personal data never falls through.
A redacted dead letter replays as redacted.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

from subjects import TrackEvent

__all__ = ["Redactor", "load_redactor", "redacted_body", "redacted_details"]

log = logging.getLogger(__name__)

Redactor = Callable[[str, dict[str, Any]], dict[str, Any]]


def load_redactor(spec: str | None) -> Redactor | None:
    """The function ``package.module:function`` names, or one ``ValueError`` line saying what is wrong."""
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"TRACKS_REDACT={spec!r}: expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"TRACKS_REDACT={spec!r}: cannot import {module_name!r}: {exc}") from None
    hook = getattr(module, attribute, None)
    if not callable(hook):
        raise ValueError(f"TRACKS_REDACT={spec!r}: {module_name} has no function {attribute!r}")
    return hook  # type: ignore[no-any-return]


def _apply(redact: Redactor, track: str, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        kept = redact(track, dict(payload))  # a copy: the caller's object is also the step's output
    except Exception as exc:
        log.error(
            "TRACKS_REDACT hook failed for track %s (%s: %s); nothing kept", track, type(exc).__name__, exc
        )
        return {"redaction_failed": type(exc).__name__}
    if not isinstance(kept, dict):
        log.error(
            "TRACKS_REDACT hook returned %s for track %s, not a dict; nothing kept",
            type(kept).__name__,
            track,
        )
        return {"redaction_failed": type(kept).__name__}
    return kept


def redacted_details(redact: Redactor, track: str, details: Any) -> Any:
    """``details`` with its ``payload`` (when it has one) as the hook keeps it."""
    if isinstance(details, dict) and isinstance(details.get("payload"), dict):
        return {**details, "payload": _apply(redact, track, details["payload"])}
    return details


def redacted_body(redact: Redactor, track: str, body: bytes) -> bytes:
    """A message body (a ``TrackEvent`` envelope or a plain JSON payload) with its payload as the
    hook keeps it; a body that is not a JSON object is kept as it is (it holds no fields to drop)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    if TrackEvent.looks_like(data) and isinstance(data.get("payload"), dict):
        data["payload"] = _apply(redact, track, data["payload"])
    else:
        data = _apply(redact, track, data)
    return json.dumps(data, separators=(",", ":")).encode()
