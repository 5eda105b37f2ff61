"""One track's consume loop: fetch ahead, start the most urgent, run the chain, settle.

The worker owns every message while it is held (heartbeats); what becomes of it — ack, nak,
term, dead letter, hand-back — is decided and done by :mod:`actors.runtime.settlement` alone, from
the outcome the chain returned or the exception it raised. Handlers only return or raise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import suppress

from nats.aio.msg import Msg

from actors.context import TrackContext
from actors.errors import PoisonMessage
from actors.failures.door import DeadLetterDoor
from actors.flow.gate import FlowGate
from actors.ledger.plan import StepPlan
from actors.ledger.runs import Runs
from actors.ledger.store import Ledger
from actors.middleware.base import Middleware, Next, Step, compose
from actors.middleware.breaker import BreakerState, CircuitBreaker
from actors.middleware.tracing import in_step_trace
from actors.runtime.config import TrackConfig
from actors.runtime.handler_call import HandlerCall
from actors.runtime.priority import PriorityBuffer, level_of
from actors.runtime.settlement import Settlement
from actors.runtime.step_input import check_workflow, describe, header_of, nats_away, step_context
from actors.track import Track
from actors.transport.decode import decode, stored_at_us
from actors.transport.payloads import PayloadStore
from actors.transport.pull import MessageSource
from foundation.jetstream.publisher import EventPublisher
from foundation.logs import set_step
from foundation.metrics import NOOP
from subjects import headers

__all__ = ["TrackWorker"]

log = logging.getLogger(__name__)


class TrackWorker:
    def __init__(
        self,
        track: Track,
        config: TrackConfig,
        source: MessageSource,
        ledger: Ledger,
        publisher: EventPublisher,
        middleware: list[Middleware],
        breaker: CircuitBreaker,
        runs: Runs,
        payloads: PayloadStore,
        targets: list[str] | None = None,
        *,
        door: DeadLetterDoor | None = None,
        user_middleware: int = 0,
        gate: FlowGate | None = None,
    ) -> None:
        """``user_middleware``: how many of the last ``middleware`` are users' own (see ``compose``)."""
        self.track = track
        self.config = config
        self.source = source
        self._chain: Next = compose(middleware, HandlerCall(track, payloads), tolerant=user_middleware)
        door = door or DeadLetterDoor(ledger, publisher, runs, payloads)
        self.settlement = Settlement(
            track, config.retry, ledger, publisher, runs, StepPlan.of(track), targets, door
        )
        self.breaker = breaker
        self._probe: int | None = None  # id() of the half-open probe message
        self._waiting: PriorityBuffer[Msg] = PriorityBuffer(aging_s=config.priority_aging_s)
        self._background: set[asyncio.Task[None]] = set()
        self._tasks: dict[asyncio.Task[None], int] = {}  # running steps, by their stream sequence
        self._inflight: dict[int, tuple[Msg, float]] = {}  # by id(): Msg is unhashable
        self._running_seqs: set[int] = set()  # stream sequences being processed
        self._contexts: dict[int, TrackContext] = {}  # steps in flight, by stream sequence (cancel_run)
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._fetching = asyncio.Event()
        """Clear while paused (:meth:`pause`, the resource guard): nothing new is fetched."""
        self._fetching.set()
        self.gate = gate
        """Flow limits (actors/flow/): fetched steps wait there, held, until the limits let them start."""
        self._ready: deque[Msg] = deque()  # admitted by the gate, waiting for a local slot
        if gate is not None:
            gate.capacity = lambda: self.config.concurrency - len(self._tasks) - len(self._ready)
            gate.admitted = self._admitted
            gate.dropped = self._dropped
        self.processed = 0
        self.fetches = 0
        self.settle_errors = 0
        self.redeliveries_ignored = 0

    @property
    def in_flight(self) -> int:
        """Messages held: fetched and not yet settled (running or waiting to start)."""
        return len(self._inflight)

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Start waiting messages most urgent first; fetch ahead when half the look-ahead is free.

        Messages are fetched a batch ahead of the free slots, so that among those pending the
        higher-priority ones start first (:mod:`actors.runtime.priority`); fetching only when half the
        look-ahead is free keeps pulls large (each pull is a round trip).
        """
        heartbeats = asyncio.create_task(self._heartbeat_loop(), name=f"{self.track.name}-heartbeats")
        gate = asyncio.create_task(self.gate.run(), name=f"{self.track.name}-gate") if self.gate else None
        c = self.config
        lookahead = max(1, min(c.fetch_batch, c.max_ack_pending - c.concurrency))
        low_water = max(1, lookahead // 2)
        try:
            while not self._stopping.is_set():
                if not self._fetching.is_set():
                    await self._fetching.wait()  # paused: what was fetched runs, nothing new comes
                    continue
                if self._unstarted() and self.breaker.state is not BreakerState.CLOSED:
                    await self._release_waiting(keep=self._probe)
                self._dispatch()
                room = lookahead - len(self._waiting)
                if self.gate is not None:  # held at the gate: up to max_ack_pending, then wait
                    room = min(room, self.gate.max_held - len(self._inflight))
                    if room <= 0:
                        await self._wait_for_slot()
                        continue
                if room < low_water and (self._tasks or self._waiting):
                    await self._wait_for_slot()
                    continue
                allowed = self.breaker.allowance(room)
                if allowed == 0:
                    await self._wait_for_breaker()
                    continue
                self._hold(await self._fetch(allowed))
                self._dispatch()
        finally:
            heartbeats.cancel()
            if gate is not None:
                gate.cancel()

    def _dispatch(self) -> None:
        """Start waiting messages in free slots, most urgent first (also run as each step ends,
        so a freed slot never idles while the loop is inside a fetch)."""
        if self._stopping.is_set() or not (self._waiting or self._ready):
            return
        if self.breaker.state is not BreakerState.CLOSED and (self._probe is None or len(self._waiting) > 1):
            return  # only the half-open probe may start; the rest is handed back by the loop
        if self.gate is not None:
            for msg in self._waiting.drain():  # most urgent first, into the gate's queues
                self.gate.enqueue(msg)
            while self._ready and len(self._tasks) < self.config.concurrency:
                self._spawn(self._ready.popleft())
            return
        free = self.config.concurrency - len(self._tasks)
        if free > 0:
            for msg in self._waiting.take(free):
                self._spawn(msg)

    def _admitted(self, msg: Msg) -> None:
        self._ready.append(msg)
        self._dispatch()

    def _dropped(self, msg: Msg) -> None:
        """A redelivery of a message held at the gate: the one held settles it (by stream seq)."""
        self.redeliveries_ignored += 1
        self._inflight.pop(id(msg), None)

    async def _release_waiting(self, keep: int | None) -> None:
        """The breaker opened: hand back what was fetched but not started (all but the probe)."""
        unstarted = self._waiting.drain()
        if self.gate is not None:  # held at the gate or admitted: their slots go back too
            unstarted += self.gate.drain() + list(self._ready)
            self._ready.clear()
        for msg in unstarted:
            if id(msg) == keep:
                self._waiting.add(msg, 0)
                continue
            self._inflight.pop(id(msg), None)
            if self.gate is not None:
                self.gate.done(msg)
            await self.settlement.hand_back(msg)

    def _unstarted(self) -> bool:
        return bool(self._waiting or self._ready or (self.gate is not None and self.gate.held))

    async def _fetch(self, allowed: int) -> list[Msg]:
        self.fetches += 1
        msgs = await self.source.fetch(allowed)
        if allowed == 1 and self.breaker.state != "closed":
            if msgs:
                self._probe = id(msgs[0])
            else:
                self.breaker.probe_done()
        return msgs

    def _hold(self, msgs: list[Msg]) -> None:
        """Fetched messages wait by priority; held from now on (heartbeats cover them)."""
        now = time.monotonic()
        for msg in msgs:
            self._inflight[id(msg)] = (msg, now)
            self._waiting.add(msg, level_of(header_of(msg, headers.PRIORITY)))

    async def _wait_for_slot(self) -> None:
        self._slot_freed.clear()
        await self._slot_freed.wait()

    async def _wait_for_breaker(self) -> None:
        """Open: sleep until the probe is due (or stop). Half-open: until the probe settles."""
        wait = self.breaker.seconds_until_probe()
        if wait <= 0:
            await self._wait_for_slot()
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=wait)

    def _spawn(self, msg: Msg) -> None:
        meta = msg.metadata  # parsed from the reply subject on every access: once per message here
        seq = meta.sequence.stream
        if seq in self._running_seqs:
            self._ignore_redelivery(msg, seq)
            return
        self._running_seqs.add(seq)
        task = asyncio.create_task(self._process(msg, meta))
        self._tasks[task] = seq
        task.add_done_callback(self._done)

    def _ignore_redelivery(self, msg: Msg, seq: int) -> None:
        """A redelivery of a message this worker is still processing: never run it twice.

        Its ack wait ran out while heartbeats could not reach the server (a restart, a stalled
        loop). The claim cannot tell this apart from a redelivery after a crash (same stream
        sequence), so it would run the step a second time, concurrently. The first delivery
        settles the message instead: JetStream acks, naks and heartbeats by stream sequence.
        """
        self.redeliveries_ignored += 1
        self._inflight.pop(id(msg), None)
        if self.gate is not None:
            self.gate.done(msg)
        log.info(
            "%s: stream seq %d redelivered while still in progress here; not run twice", self.track.name, seq
        )
        if self._probe == id(msg):
            self._probe = None
            self.breaker.probe_done()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running_seqs.discard(self._tasks.pop(task))
        self._dispatch()
        self._slot_freed.set()
        if self.gate is not None:
            self.gate.wake()

    def cancel_run(self, correlation_id: str, reason: str | None = None) -> int:
        """Tell this track's steps in flight for a cancelled run (``ctx.cancelled``); how many were told."""
        told = 0
        for ctx in list(self._contexts.values()):
            if ctx.correlation_id == correlation_id and not ctx.cancelled:
                ctx.mark_cancelled(reason)
                told += 1
        return told

    @property
    def paused(self) -> bool:
        return not self._fetching.is_set()

    def pause(self) -> None:
        """Fetch nothing new until :meth:`resume`; steps fetched already still start and finish."""
        self._fetching.clear()

    def resume(self) -> None:
        self._fetching.set()

    def stop_fetching(self) -> None:
        self._stopping.set()
        self._slot_freed.set()
        self._fetching.set()  # a paused loop wakes, sees the stop and ends

    async def finish_inflight(self, grace_s: float) -> int:
        """Let in-flight steps finish; cancel (and nak) what is still running after ``grace_s``.

        Messages fetched but not started are nak'ed at once, for another replica to take.
        """
        unstarted = list(self._waiting.drain())
        if self.gate is not None:
            unstarted += self.gate.drain() + list(self._ready)
            self._ready.clear()
        for msg in unstarted:
            self._inflight.pop(id(msg), None)
            if self.gate is not None:
                self.gate.done(msg)
            await self.settlement.hand_back(msg)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        left = list(self._tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
        if self.gate is not None:
            await self.gate.close()
        await self.source.close()
        return len(left)

    async def _heartbeat_loop(self) -> None:
        """``+WPI`` for every message held longer than a third of ack_wait, handler or not."""
        every = max(self.config.ack_wait_s / 3, 0.2)
        while True:
            await asyncio.sleep(every)
            cutoff = time.monotonic() - every
            for msg, since in list(self._inflight.values()):
                if since < cutoff:
                    try:
                        await msg.in_progress()
                    except Exception as exc:
                        log.debug("heartbeat failed: %s", exc)
            msg = None  # type: ignore[assignment]  # not held through the idle time that follows

    # --- one message -----------------------------------------------------------------------

    async def _process(self, msg: Msg, meta: Msg.Metadata) -> None:
        settlement = self.settlement
        try:
            hdrs = headers.plain(msg.headers)
            stored_us = stored_at_us(msg.reply)
            if settlement.metrics.start_lag is not NOOP and meta.num_delivered == 1 and stored_us:
                settlement.metrics.start_lag.observe(max(0.0, time.time() - stored_us / 1e6))
            try:
                activation = decode(msg.subject, msg.data, hdrs, meta.sequence.stream, stored_us)
                check_workflow(self.track, activation)
            except PoisonMessage as exc:
                await settlement.poison(msg, meta, exc)
                return
            step = Step(self.track, msg, activation, step_context(self.track, msg, meta, activation, hdrs))
            self._contexts[meta.sequence.stream] = step.ctx  # before the claim: a cancel after it tells it
            set_step(step.ctx)  # every line logged in this task carries cid, track, attempt, trace
            try:
                outcome = await self._chain(step)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                with in_step_trace(step):
                    await settlement.fail(step, exc)
                return
            with in_step_trace(step):  # its events continue the step's trace: one trace per run
                await settlement.settle(step, outcome)
        except asyncio.CancelledError:
            await settlement.hand_back(msg)  # shutting down: to another replica now
            raise
        except Exception as exc:
            self.settle_errors += 1
            if nats_away(exc):  # a stream electing a leader, a server away: one line, no traceback
                log.warning(
                    "%s: NATS did not answer while settling %s (%s); it stays unacked for redelivery, "
                    "which settles it from what the ledger recorded",
                    self.track.name,
                    msg.subject,
                    describe(exc),
                )
            else:
                log.exception(
                    "%s: could not settle %s; it stays unacked for redelivery", self.track.name, msg.subject
                )
        finally:
            self._inflight.pop(id(msg), None)
            if self.gate is not None:
                self.gate.done(msg)  # after settling: its slots go back
            self._contexts.pop(meta.sequence.stream, None)
            self.processed += 1
            if self._probe == id(msg):
                self._probe = None
                self.breaker.probe_done()
