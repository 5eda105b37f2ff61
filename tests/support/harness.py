"""A worker without NATS: fake messages that record how they were settled, a publisher that records
what it would publish, and the real ledger on the suite's PostgreSQL.

Think dramatiq's StubBroker: each outcome path of :mod:`actors.runtime.settlement` runs in milliseconds
through the same chain and settlement as in production (``TrackWorker._process``), and a test
reads back the settlement (``msg.settled``), the publishes and the ledger rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import PubAck

from actors.ledger.plan import StepPlan
from actors.ledger.runs import Runs
from actors.ledger.store import Ledger
from actors.middleware.base import Middleware
from actors.middleware.breaker import BreakerMiddleware, CircuitBreaker
from actors.middleware.claim import LedgerMiddleware
from actors.middleware.time_limit import TimeLimitMiddleware
from actors.middleware.tracing import TracingMiddleware
from actors.runtime.config import resolve
from actors.runtime.worker import TrackWorker
from actors.track import Track
from foundation.jetstream.publisher import EventPublisher
from foundation.settings import Settings

__all__ = ["FakeMsg", "Harness", "RecordingPublisher"]

_STORED_NS = 1_700_000_000_123_456_789


class FakeMsg:
    """A delivered JetStream message that records its settlement instead of sending it."""

    def __init__(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        seq: int,
        delivered: int = 1,
        stored_ns: int = _STORED_NS,
        track: str = "t",
    ) -> None:
        self.subject = subject
        self.data = data
        self.headers = headers
        self.reply = f"$JS.ACK.TRACKS.{track}.{delivered}.{seq}.{seq}.{stored_ns}.0"
        self.settled: list[tuple[str, float | None]] = []
        self._meta = Msg.Metadata(
            sequence=Msg.Metadata.SequencePair(stream=seq, consumer=seq),
            num_pending=0,
            num_delivered=delivered,
            timestamp=dt.datetime.fromtimestamp(stored_ns / 1e9, dt.UTC),
            stream="TRACKS",
            consumer=track,
        )

    @property
    def metadata(self) -> Msg.Metadata:
        return self._meta

    async def ack(self) -> None:
        self.settled.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append(("nak", delay))

    async def term(self) -> None:
        self.settled.append(("term", None))

    async def in_progress(self) -> None:
        pass

    @property
    def settlement(self) -> str | None:
        """The one way it was settled (``None``: left alone); two would be a bug."""
        assert len(self.settled) <= 1, self.settled
        return self.settled[0][0] if self.settled else None


class RecordingPublisher(EventPublisher):
    """The real :class:`foundation.jetstream.publisher.EventPublisher` (its events built as in
    production) with no connection: what would be published is kept instead."""

    def __init__(self, max_payload: int = 1024 * 1024) -> None:
        self._max_payload = max_payload
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    @property
    def max_payload(self) -> int:
        return self._max_payload

    async def publish(
        self, subject: str, body: bytes, hdrs: dict[str, str], *, stream: str | None = None
    ) -> PubAck:
        self.published.append((subject, body, dict(hdrs)))
        return PubAck(stream=stream or "TRACKS", seq=len(self.published))

    def subjects(self) -> list[str]:
        return [s for s, _, _ in self.published]


class _NoPayloads:
    async def offload(self, correlation_id: str, track: str, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    async def resolve(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload


class _NoSource:
    async def close(self) -> None:
        pass


class Harness:
    """One track's worker over fake messages; ``await harness.deliver(msg)`` runs one delivery."""

    def __init__(self, track: Track, pool: asyncpg.Pool, settings: Settings) -> None:
        self.track = track
        self.pool = pool
        self.publisher = RecordingPublisher()
        self.ledger = Ledger(pool)
        self.runs = Runs(pool, self.publisher)
        config = resolve(track, settings)
        self.breaker = CircuitBreaker(track.name, threshold=config.breaker_threshold, cooldown_s=60)
        chain: list[Middleware] = [
            TracingMiddleware(),
            LedgerMiddleware(self.ledger, StepPlan.of(track), max_tries=config.max_deliver),
            BreakerMiddleware(self.breaker),
            TimeLimitMiddleware(config.time_limit_s),
        ]
        targets = [t.name for t in track.graph.dependents(track.name)] if track.graph else None
        self.worker = TrackWorker(
            track,
            config,
            _NoSource(),  # type: ignore[arg-type]
            self.ledger,
            self.publisher,
            chain,
            self.breaker,
            self.runs,
            _NoPayloads(),  # type: ignore[arg-type]
            targets,
        )

    async def __aenter__(self) -> Harness:
        self.ledger.start()
        self.runs.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runs.close()
        await self.ledger.close()

    async def deliver(self, msg: FakeMsg) -> FakeMsg:
        await self.worker._process(msg, msg.metadata)  # type: ignore[arg-type]
        return msg
