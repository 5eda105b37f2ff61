"""A ``TRACKS_REDACT`` hook for tests: ``tests.support.redaction:drop_card``."""

from __future__ import annotations

from typing import Any

__all__ = ["drop_card", "not_a_dict"]


def drop_card(track: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Keep everything but the ``card`` field (personal data); note which track asked."""
    payload.pop("card", None)
    return {**payload, "redacted_for": track}


def not_a_dict(track: str, payload: dict[str, Any]) -> Any:
    return "oops"
