"""Tick priority: carried on the message (header and metadata); actors order work by it."""

from __future__ import annotations

from enum import StrEnum

from subjects.headers import PRIORITY

__all__ = ["PRIORITY_HEADER", "Priority"]

PRIORITY_HEADER = PRIORITY


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Smaller runs first: high 0, normal 1, low 2."""
        return {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}[self]
