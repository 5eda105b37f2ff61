"""A track's admission gate: a fetched step starts only when every limit it draws from lets it.

How a step waits: **held**, not handed back and not parked. A fetched message that a limit does
not admit yet stays with the worker that fetched it, covered by the worker's ``+WPI`` heartbeats,
in a queue per key here; it costs no delivery (a nak would: JetStream counts every redelivery
against ``max_deliver``) and no running slot (the worker's ``concurrency`` counts only steps
that run). Holding is bounded by the consumer's ``max_ack_pending`` — the worker fetches no more
than that (all replicas together, as JetStream enforces it). Exactly-once and never-lose are the
worker's as before: a held message is unacked, so a replica that dies loses nothing (its
messages come back after ack_wait) and the ledger's claim still fences the step. Parking in
PostgreSQL (ack, then run from a table) was the alternative: unbounded backlog per key, but a
second queue beside JetStream with its own delivery, retry and dead-letter paths to get right;
holding keeps one.

Which held step goes next: the keys take turns (round-robin, one start per key per turn), so one
key's big backlog delays another key's single step by at most one start per busy key, within
what is held (``max_ack_pending``); beyond that, the stream's order decides what is fetched.

A slot is a lease in PostgreSQL (:mod:`actors.flow.store`) of the track's ack_wait, renewed every
third of it while the step runs and released when it has settled: a replica killed while holding
slots gives them back within ack_wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.msg import Msg

from actors.flow.limits import Limit, key_limit_name, limits_of, requirements_of
from actors.flow.store import FlowStore
from actors.flow.superseding import SupersededMiddleware, Superseding
from actors.runtime.metrics import flow_wait
from actors.runtime.priority import level_of
from actors.track import Track
from actors.transport.decode import decode, stored_at_us
from actors.transport.payloads import PayloadStore, is_ref
from foundation.jetstream.publisher import EventPublisher
from subjects import headers

__all__ = ["FlowGate"]

log = logging.getLogger(__name__)

SWEEP_S = 600.0
"""How often a gate drops expired leases and old starts (an acquire drops its own key's already)."""
KEYS_PER_CALL = 16
"""Keys asked for at once (one PostgreSQL call each, concurrently) in a turn of per-key limits."""
POLL_S = 0.2
"""How often a step refused by a slot held elsewhere asks again (releases here wake it at once)."""


NORMAL = level_of(None)


@dataclass
class _Held:
    msg: Msg
    since: float
    seq: int = 0
    cid: str | None = None
    level: int = NORMAL


class FlowGate:
    def __init__(
        self,
        track: Track,
        limits: list[Limit],
        store: FlowStore,
        payloads: PayloadStore,
        *,
        lease_s: float,
        publisher: EventPublisher | None = None,
    ) -> None:
        self.track = track
        self.on_conflict = track.options.on_conflict
        self._key_limit = key_limit_name(track.name)
        self.superseding = Superseding(store.pool, publisher)
        self.limits = limits
        self.store = store
        self.lease_s = lease_s
        self._payloads = payloads
        self.max_held = track.options.max_held or 1 << 30
        """The worker holds no more (and the consumer's max_ack_pending bounds it anyway)."""
        self._keyed_limits = any(lim.per_key for lim in limits)
        self._per_key = any(lim.per_key for lim in limits) or track.options.key is not None
        self._new: list[_Held] = []
        self._queues: dict[str, deque[_Held]] = {}  # insertion order is the turn order
        self._leases: dict[int, list[int]] = {}  # by id(msg): slots held by a started step
        self._wake = asyncio.Event()
        self._waits = {lim.name: flow_wait(lim.name) for lim in limits}
        self.capacity: Callable[[], int] = lambda: 1
        """How many more steps the worker can start now (set by the worker)."""
        self.admitted: Callable[[Msg], None] = lambda msg: None
        """Called with each admitted message: the worker starts it (set by the worker)."""
        self.dropped: Callable[[Msg], None] = lambda msg: None
        """Called with a redelivery of a message held here already: the worker lets it go."""
        self._seqs: set[int] = set()  # stream sequences held here
        self.admissions = 0
        self.refusals = 0
        self._releases: set[asyncio.Task[None]] = set()

    @classmethod
    def for_track(
        cls,
        track: Track,
        pool: asyncpg.Pool,
        payloads: PayloadStore,
        *,
        lease_s: float,
        publisher: EventPublisher | None = None,
    ) -> FlowGate | None:
        """The track's gate, or ``None`` when it draws from no limit (nothing waits, nothing costs)."""
        limits = limits_of(track)
        if not limits:
            return None
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}/{track.name}"
        return cls(track, limits, FlowStore(pool, holder), payloads, lease_s=lease_s, publisher=publisher)

    def middleware(self) -> SupersededMiddleware:
        """Placed right after the claim: a superseded step's run is cancelled, the step not run."""
        return SupersededMiddleware(self.superseding)

    @property
    def held(self) -> int:
        return len(self._new) + sum(len(q) for q in self._queues.values())

    def enqueue(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq in self._seqs:  # redelivered while held here (heartbeats did not reach NATS)
            self.dropped(msg)
            return
        self._seqs.add(seq)
        level = level_of(headers.plain(msg.headers).get(headers.PRIORITY)) if msg.headers else NORMAL
        self._new.append(_Held(msg, time.monotonic(), seq, level=level))
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def done(self, msg: Msg) -> None:
        """The step has settled: its slots go back (now; at worst when the lease runs out)."""
        leases = self._leases.pop(id(msg), None)
        if leases:
            task = asyncio.get_running_loop().create_task(self._release(leases))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def close(self) -> None:
        """At shutdown, once the steps have settled or been handed back: give back every slot."""
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        try:
            await self.store.forget()
        except Exception as exc:
            log.warning(
                "%s: could not give back flow slots at shutdown (%s); they expire within %.0fs",
                self.track.name,
                type(exc).__name__,
                self.lease_s,
            )

    def drain(self) -> list[Msg]:
        """Everything held and not started (shutdown: the worker hands them back)."""
        out = [h.msg for h in self._new] + [h.msg for q in self._queues.values() for h in q]
        self._new.clear()
        self._queues.clear()
        self._seqs.clear()
        return out

    async def _release(self, leases: list[int]) -> None:
        try:
            await self.store.release(leases)
        except Exception as exc:  # the lease runs out on its own
            log.warning(
                "%s: could not release flow slots (%s); they expire within %.0fs",
                self.track.name,
                type(exc).__name__,
                self.lease_s,
            )
        self._wake.set()

    # --- the loops -------------------------------------------------------------------------

    async def run(self) -> None:
        await self._define()
        renewer = asyncio.create_task(self._renew_loop(), name=f"{self.track.name}-flow-leases")
        try:
            while True:
                timeout = await self._admit_round()
                self._wake.clear()
                if timeout is None:
                    await self._wake.wait()
                    continue
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            renewer.cancel()

    async def _define(self) -> None:
        try:
            await self.store.define(self.limits)
        except Exception as exc:  # only what `tracks limits` shows depends on it
            log.warning("%s: could not record its flow limits (%s)", self.track.name, type(exc).__name__)

    async def _renew_loop(self) -> None:
        swept = time.monotonic()
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if time.monotonic() - swept > SWEEP_S:
                swept = time.monotonic()
                with suppress(Exception):
                    await self.store.sweep()
            try:
                await self.store.renew(self.lease_s, {lim.name: self.held for lim in self.limits})
            except Exception as exc:
                log.warning("%s: could not renew flow slot leases (%s)", self.track.name, type(exc).__name__)

    async def _admit_round(self) -> float | None:
        """Start what the limits let start, keys in turn; how long to wait before asking again
        (``None``: until something arrives or is released)."""
        while self._new:
            held = self._new.pop(0)
            key = await self._key_of(held) if self._per_key else ""
            if self.on_conflict is not None and await self._conflicts(held, key):
                continue
            _by_priority(self._queues.setdefault(key, deque()), held)
        try:
            return await (self._admit_keyed() if self._keyed_limits else self._admit_shared())
        except Exception as exc:
            log.warning("%s: flow limits unavailable (%s); retrying", self.track.name, type(exc).__name__)
            return 1.0

    async def _admit_shared(self) -> float | None:
        """Every key draws from the same limits: one call admits as many as they and the free
        slots allow, handed to the keys in turn."""
        reqs = requirements_of(self.limits, "")
        while self._queues:
            room = min(self.capacity(), sum(len(q) for q in self._queues.values()))
            if room <= 0:
                return None  # a finishing step wakes the gate
            result = await self.store.acquire(reqs, self.lease_s, count=room)
            if not result.grants:
                self.refusals += 1
                return result.wait_s or POLL_S
            for leases in result.grants:
                key = next(iter(self._queues))
                self._admit(self._take(key), leases)
        return None

    async def _admit_keyed(self) -> float | None:
        """Per-key limits: each key with a step held asks for itself once a round, up to
        :data:`KEYS_PER_CALL` keys at once; a key served or refused goes to the back of the turn
        order, so a run of busy keys never keeps the keys behind them from being asked."""
        while self._queues:
            wait: float | None = None
            admitted = False
            pending = list(self._queues)
            while pending:
                room = min(self.capacity(), KEYS_PER_CALL)
                if room <= 0:
                    return None  # a finishing step wakes the gate
                keys, pending = [k for k in pending[:room] if k in self._queues], pending[room:]
                if self.on_conflict == "keep_newest":
                    fresh = []
                    for key in keys:
                        if await self._outdated(self._queues[key][0], key):  # newer one elsewhere
                            self._supersede(self._take(key), key)
                            admitted = True
                        else:
                            fresh.append(key)
                    keys = fresh
                results = await asyncio.gather(
                    *(
                        self.store.acquire(
                            requirements_of(self.limits, key),
                            self.lease_s,
                            self._queues[key][0].cid,
                            self._queues[key][0].seq,
                        )
                        for key in keys
                    )
                )
                shared_block = False
                for key, result in zip(keys, results, strict=True):
                    if not result.grants:
                        self.refusals += 1
                        hint = result.wait_s or POLL_S
                        wait = hint if wait is None else min(wait, hint)
                        shared_block |= result.blocked is not None and not result.blocked.limit.per_key
                        self._queues[key] = self._queues.pop(key)  # busy: the others' turn first
                        continue
                    self._admit(self._take(key), result.grants[0])
                    admitted = True
                if shared_block:
                    return wait  # a limit every key draws from: ask again when it may have room
            if not admitted:
                return wait
        return None

    def _take(self, key: str) -> _Held:
        """The key's oldest held step; the key goes to the back of the turn order."""
        queue = self._queues.pop(key)
        held = queue.popleft()
        if queue:
            self._queues[key] = queue
        return held

    def _admit(self, held: _Held, leases: list[int]) -> None:
        self.admissions += 1
        now = time.monotonic()
        for lim in self.limits:
            self._waits[lim.name].observe(now - held.since)
        if leases:
            self._leases[id(held.msg)] = leases
        self._seqs.discard(held.seq)
        self.admitted(held.msg)

    # --- singleton strategies --------------------------------------------------------------

    async def _conflicts(self, held: _Held, key: str) -> bool:
        """A newer step of ``key`` arrived: cancel what it replaces; True when ``held`` itself is
        the older one (it is superseded and goes through at once, to be closed)."""
        if not key or held.seq == 0:
            return False
        try:
            if self.on_conflict == "cancel_in_progress":
                for cid in await self.store.older_running(self._key_limit, key, held.seq):
                    await self.superseding.cancel_run(cid, f"superseded by a newer step for key {key}")
                return False
            if await self._outdated(held, key):
                self._supersede(held, key)
                return True
        except Exception as exc:
            log.warning("%s: on_conflict not applied (%s)", self.track.name, type(exc).__name__)
            return False
        queue = self._queues.get(key)
        while queue:  # the older ones held here give way to this one
            self._supersede(queue.popleft(), key)
        self._queues.pop(key, None)
        return False

    async def _outdated(self, held: _Held, key: str) -> bool:
        return held.seq > 0 and await self.store.newest(self._key_limit, key, held.seq) > held.seq

    def _supersede(self, held: _Held, key: str) -> None:
        self.superseding.mark(held.seq, f"superseded by a newer step for key {key}")
        self._seqs.discard(held.seq)
        self.admitted(held.msg)

    async def _key_of(self, held: _Held) -> str:
        """The step's key from its input; '' when it cannot be read (the chain then refuses it)."""
        fn, msg = self.track.options.key, held.msg
        if fn is None:
            return ""
        try:
            activation = decode(msg.subject, msg.data, headers.plain(msg.headers), 0, stored_at_us(msg.reply))
            held.cid = activation.correlation_id
            raw: Any = activation.payload
            if is_ref(raw):
                raw = await self._payloads.resolve(raw)
            return str(fn(self.track.parse_input(raw)))
        except Exception as exc:
            log.debug("%s: no flow key for %s (%s)", self.track.name, msg.subject, exc)
            return ""


def _by_priority(queue: deque[_Held], held: _Held) -> None:
    """A key's steps start in priority order (a high trigger overtakes what its key holds), then
    in arrival order."""
    if not queue or queue[-1].level <= held.level:
        queue.append(held)
        return
    queue.insert(next(i for i, h in enumerate(queue) if h.level > held.level), held)
