"""Compact JSON for everything the runtime writes on its hot path (events, ledger batches, payloads).

pydantic-core's encoder (Rust) is about six times faster than ``json.dumps`` for the small
documents of a step, and each step encodes several. Values JSON has no type for are written
as ``str(value)``; datetimes as ISO 8601 (``...Z`` in UTC); non-ASCII text as UTF-8.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

__all__ = ["dumpb", "dumps"]


def dumpb(value: Any) -> bytes:
    return to_json(value, fallback=str)


def dumps(value: Any) -> str:
    return to_json(value, fallback=str).decode()
