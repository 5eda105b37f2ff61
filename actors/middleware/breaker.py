"""A circuit breaker per track: stop fetching after repeated failures, then probe.

CLOSED → (``threshold`` consecutive failures) → OPEN: no fetches for ``cooldown_s``, so
messages wait safely in the stream instead of burning their deliveries → HALF_OPEN: one
probe message → success closes, failure re-opens. Bad input does not count, whether the
runtime found it (poison) or the handler said so (``PermanentError``): it says nothing about
the track's health. Messages already in flight finish normally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from actors.errors import PermanentError, PoisonMessage
from actors.failures.alert_webhook import AlertWebhook
from actors.ledger.store import Ledger, LogRow
from actors.middleware.base import Next, Outcome, Step
from foundation.jetstream.publisher import EventPublisher
from subjects import headers, names
from subjects.alerts import AlertEnvelope, AlertKind, Severity

__all__ = ["BreakerAnnouncer", "BreakerMiddleware", "BreakerState", "CircuitBreaker", "Transition"]

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Transition:
    track: str
    old: BreakerState
    new: BreakerState
    consecutive_failures: int


class CircuitBreaker:
    def __init__(
        self,
        track: str,
        *,
        threshold: int,
        cooldown_s: float,
        on_transition: Callable[[Transition], None] = lambda t: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.track = track
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._on_transition = on_transition
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_out = False

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def allowance(self, wanted: int) -> int:
        """How many messages may be fetched now: all, one probe, or none."""
        if not self.enabled or self.state is BreakerState.CLOSED:
            return wanted
        if self.state is BreakerState.OPEN:
            if self._clock() < self._opened_at + self.cooldown_s:
                return 0
            self._move(BreakerState.HALF_OPEN)
        if self._probe_out:
            return 0
        self._probe_out = True
        return 1

    def seconds_until_probe(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def probe_done(self) -> None:
        """The probe message was settled (whatever it proved): another may be fetched."""
        self._probe_out = False

    def record(self, ok: bool) -> None:
        if not self.enabled:
            return
        if ok:
            self.consecutive_failures = 0
            if self.state is not BreakerState.CLOSED:
                self._move(BreakerState.CLOSED)
            return
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.consecutive_failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self.state = self.state, new
        self._probe_out = False
        self._on_transition(Transition(self.track, old, new, self.consecutive_failures))


class BreakerMiddleware:
    """Feeds the handler's outcomes to the breaker (after the ledger: duplicates never count)."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    async def __call__(self, step: Step, call_next: Next) -> Outcome:
        try:
            outcome = await call_next(step)
        except (PoisonMessage, PermanentError):  # bad input says nothing about the track's health
            raise
        except Exception:
            self.breaker.record(False)
            raise
        self.breaker.record(True)
        return outcome


class BreakerAnnouncer:
    """Records each transition in ``processing_logs`` and publishes it on ``tracks.alerts.breaker``
    in the alert envelope (open: critical; half-open: warning; closed: info, with ``endsAt``),
    also to the alert webhook when there is one.

    Transitions happen inside synchronous bookkeeping, so the writes run as background
    tasks; a failure to announce is logged, never raised into message handling.
    """

    def __init__(
        self, ledger: Ledger, publisher: EventPublisher, webhook: AlertWebhook | None = None
    ) -> None:
        self._ledger = ledger
        self._publisher = publisher
        self._webhook = webhook
        self._instance = f"{socket.gethostname()}:{os.getpid()}"
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, t: Transition) -> None:
        level = logging.WARNING if t.new is BreakerState.OPEN else logging.INFO
        log.log(
            level,
            "circuit breaker of %s: %s -> %s after %d consecutive failures",
            t.track,
            t.old,
            t.new,
            t.consecutive_failures,
        )
        details = {
            "from": str(t.old),
            "to": str(t.new),
            "consecutiveFailures": t.consecutive_failures,
            "instance": self._instance,
        }
        self._ledger.record(
            LogRow(
                correlation_id=f"breaker:{t.track}",
                track=t.track,
                event_type=f"breaker_{t.new}",
                attempt=0,
                details=details,
            )
        )
        task = asyncio.get_running_loop().create_task(self._publish(t, details))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def envelope(self, t: Transition, details: dict[str, object]) -> AlertEnvelope:
        closed = t.new is BreakerState.CLOSED
        severity = {BreakerState.OPEN: Severity.CRITICAL, BreakerState.HALF_OPEN: Severity.WARNING}
        now = datetime.now(UTC)
        return AlertEnvelope(
            kind=AlertKind.BREAKER,
            severity=severity.get(t.new, Severity.INFO),
            summary=(
                f"circuit breaker of track {t.track}: {t.old} -> {t.new}"
                + ("" if closed else f" after {t.consecutive_failures} consecutive failures")
            ),
            labels={"alertname": "tracks_breaker", "track": t.track},
            starts_at=now,
            ends_at=now if closed else None,
            source=self._instance,
            details=details,
        )

    async def _publish(self, t: Transition, details: dict[str, object]) -> None:
        alert = self.envelope(t, details)
        if self._webhook is not None:
            self._webhook.send(alert)
        try:
            await self._publisher.publish(
                names.alert(AlertKind.BREAKER),
                alert.to_bytes(),
                {headers.MSG_ID: f"breaker:{t.track}:{self._instance}:{time.time_ns()}"},
            )
        except Exception as exc:
            log.warning("could not publish the breaker transition of %s: %s", t.track, exc)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
