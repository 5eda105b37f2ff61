"""The one back-off for retry loops against infrastructure (database, NATS): exponential, capped.

Used by the group commit (a database outage), the JetStream publisher (NATS away), the
start-up wait for PostgreSQL and the scheduler's tick publishes. Step failures use the
runtime's retry policy instead (``actors.retry``: jittered, per track).
"""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """``next()`` gives ``first_s``, then doubles up to ``cap_s``: 0.1, 0.2, 0.4, ... 2.0, 2.0."""

    __slots__ = ("_next", "cap_s", "factor", "first_s")

    def __init__(self, first_s: float = 0.1, cap_s: float = 2.0, factor: float = 2.0) -> None:
        if first_s <= 0 or cap_s < first_s or factor < 1:
            raise ValueError(f"invalid back-off: first {first_s}, cap {cap_s}, factor {factor}")
        self.first_s = first_s
        self.cap_s = cap_s
        self.factor = factor
        self._next = first_s

    def peek(self) -> float:
        """The delay :meth:`next` would give, without moving on."""
        return self._next

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.cap_s)
        return delay
