"""When to retry and how long to wait: exponential back-off with full jitter, capped.

JetStream's consumer ``backoff`` list applies only to ack-wait expiry, not to a nak, so the
delay of a nak is computed here from the delivery count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from actors.errors import PermanentError, PoisonMessage, RetryableError
from foundation.jetstream.publisher import MessageTooLarge

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    max_deliver: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: float = 0.2
    """Fraction of the delay drawn at random, so failed replicas do not retry in lock-step."""

    def __post_init__(self) -> None:
        if self.max_deliver < 1 or self.base_s < 0 or self.cap_s < self.base_s or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid retry policy {self}")

    def is_permanent(self, exc: BaseException) -> bool:
        return isinstance(exc, PermanentError | PoisonMessage | MessageTooLarge)

    def exhausted(self, deliveries: int) -> bool:
        return deliveries >= self.max_deliver

    def delay_s(self, deliveries: int, exc: BaseException | None = None) -> float:
        """Delay before delivery ``deliveries + 1``; a handler's own ``delay_s`` wins."""
        if isinstance(exc, RetryableError) and exc.delay_s is not None:
            return exc.delay_s
        raw: float = min(self.cap_s, self.base_s * 2.0 ** max(0, deliveries - 1))
        return raw * (1 - self.jitter * random.random())
