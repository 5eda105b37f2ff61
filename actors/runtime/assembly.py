"""How a runtime builds one track's worker: its consumer, its breaker, its flow gate and its chain.

The chain, outermost first: tracing, the ledger's claim, the flow gate's superseded check (with
singleton keys), the breaker and the time limit (with failure handling on), then the user's
middleware, and the handler at the end (:mod:`actors.runtime.handler_call`).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from nats.aio.client import Client as NATS

from actors.failures.door import DeadLetterDoor
from actors.flow.gate import FlowGate
from actors.ledger.plan import StepPlan
from actors.ledger.runs import Runs
from actors.ledger.store import Ledger
from actors.middleware.base import Middleware
from actors.middleware.breaker import BreakerAnnouncer, BreakerMiddleware, CircuitBreaker
from actors.middleware.claim import LedgerMiddleware
from actors.middleware.time_limit import TimeLimitMiddleware
from actors.middleware.tracing import TracingMiddleware
from actors.runtime.config import resolve
from actors.runtime.worker import TrackWorker
from actors.track import Track
from actors.transport.lanes import LanedSource
from actors.transport.payloads import PayloadStore
from actors.transport.pull import ConsumerSpec, MessageSource, PullSource
from actors.transport.push import PushSource
from foundation.jetstream.publisher import EventPublisher
from foundation.settings import Settings

__all__ = ["HANDBACK_ALLOWANCE", "WorkerParts", "assemble_worker"]

HANDBACK_ALLOWANCE = 20
"""Deliveries beyond a track's ``max_deliver`` that the consumer allows: messages fetched but
handed back unstarted (breaker, shutdown, look-ahead) are deliveries to JetStream but no try to
the ledger, which decides exhaustion by tries. The server's limit stays as a last backstop
(the max-deliveries advisory), for a message that never reaches a claim."""


@dataclass(frozen=True)
class WorkerParts:
    """What every worker of one runtime shares."""

    nc: NATS
    settings: Settings
    ledger: Ledger
    publisher: EventPublisher
    announcer: BreakerAnnouncer
    payloads: PayloadStore
    pool: asyncpg.Pool
    runs: Runs
    door: DeadLetterDoor | None
    user_middleware: list[Middleware]
    failure_handling: bool


def assemble_worker(track: Track, parts: WorkerParts) -> TrackWorker:
    """``track``'s worker: its config resolved, consumer, breaker, flow gate and chain built."""
    config = resolve(track, parts.settings)
    spec = ConsumerSpec.for_track(
        track,
        ack_wait_s=config.ack_wait_s,
        max_deliver=config.max_deliver + HANDBACK_ALLOWANCE,
        max_ack_pending=config.max_ack_pending,
    )
    js = parts.nc.jetstream()
    source: MessageSource
    if track.options.delivery == "push":
        source = PushSource(parts.nc, js, spec, fetch_timeout_s=config.fetch_timeout_s)
    else:
        source = PullSource(parts.nc, js, spec, fetch_timeout_s=config.fetch_timeout_s)
    # high-priority triggers come by their own lane, pulled first (actors/transport/lanes.py)
    source = LanedSource(parts.nc, js, source, fetch_timeout_s=config.fetch_timeout_s)
    breaker = CircuitBreaker(
        track.name,
        threshold=config.breaker_threshold,
        cooldown_s=config.breaker_cooldown_s,
        on_transition=parts.announcer,
    )
    chain: list[Middleware] = [
        TracingMiddleware(),
        LedgerMiddleware(parts.ledger, StepPlan.of(track), max_tries=config.max_deliver),
    ]
    gate = FlowGate.for_track(
        track, parts.pool, parts.payloads, lease_s=config.ack_wait_s, publisher=parts.publisher
    )
    if gate is not None and gate.on_conflict is not None:
        chain.append(gate.middleware())  # after the claim: a superseded step's run is cancelled
    if parts.failure_handling:
        chain += [BreakerMiddleware(breaker), TimeLimitMiddleware(config.time_limit_s)]
    chain += parts.user_middleware
    targets = [t.name for t in track.graph.dependents(track.name)] if track.graph else None
    return TrackWorker(
        track,
        config,
        source,
        parts.ledger,
        parts.publisher,
        chain,
        breaker,
        parts.runs,
        parts.payloads,
        targets,
        door=parts.door,
        user_middleware=len(parts.user_middleware),
        gate=gate,
    )
