"""The actor runtime: one process running one or more tracks.

Lifecycle (an async context manager): **initialize** — connect, create or reconcile the
streams and each track's durable consumer, start the ledger; **execute** — one consume loop
per track until stopped (SIGTERM / SIGINT when :meth:`serve` runs); **shutdown** — stop
fetching, let in-flight steps finish within the grace period, flush records, drain NATS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Sequence
from types import TracebackType

import asyncpg
from nats.aio.client import Client as NATS

from actors.failures.advisories import MaxDeliveriesWatcher, UnsettledSweep
from actors.failures.alert_webhook import AlertWebhook
from actors.failures.alerts import AlertMonitor, AlertSettings, load_alert_settings, webhook_from
from actors.failures.door import DeadLetterDoor
from actors.failures.strays import CONSUMER as UNROUTED_CONSUMER
from actors.failures.strays import StrayCatcher
from actors.ledger.plan import StepPlan
from actors.ledger.redaction import load_redactor
from actors.ledger.runs import Runs
from actors.ledger.store import Ledger
from actors.middleware.base import Middleware
from actors.middleware.breaker import BreakerAnnouncer
from actors.runtime.assembly import HANDBACK_ALLOWANCE, WorkerParts, assemble_worker
from actors.runtime.cancellation import CancelListener
from actors.runtime.config import resolve
from actors.runtime.current import set_current_runtime
from actors.runtime.guard import ResourceGuard
from actors.runtime.metrics import RuntimeMetrics
from actors.runtime.request_api import ApiService, workflows_of
from actors.runtime.worker import TrackWorker
from actors.track import Track
from actors.transport.payloads import PayloadStore
from foundation import telemetry
from foundation.connections import connect_nats
from foundation.db import create_pool, migrate, pending
from foundation.gc_tuning import tune_gc
from foundation.idle_trim import IdleTrim
from foundation.jetstream.publisher import EventPublisher
from foundation.monitoring import ResourceMonitor, report_resources
from foundation.settings import Settings, load_settings
from subjects import dlq_stream, ensure_streams, tracks_stream

__all__ = ["HANDBACK_ALLOWANCE", "Runtime", "SchemaError"]

log = logging.getLogger(__name__)


class SchemaError(RuntimeError):
    """The database lacks migrations this runtime needs."""


class Runtime:
    def __init__(
        self,
        tracks: Sequence[Track],
        *,
        settings: Settings | None = None,
        middleware: Sequence[Middleware] = (),
        name: str = "tracks-actor",
        failure_handling: bool = True,
        migrate: bool = False,
        alert_settings: AlertSettings | None = None,
    ) -> None:
        """``failure_handling=False`` leaves out the breaker and time limit (for ``tracks bench`` only).
        ``migrate``: bring a database whose schema is behind up to date (the embedded default's);
        otherwise such a database is refused with "run `tracks db migrate`"."""
        if not tracks:
            raise ValueError("a runtime needs at least one track")
        names = [t.name for t in tracks]
        if len(set(names)) != len(names):
            raise ValueError(f"track names repeat: {names}")
        if UNROUTED_CONSUMER in names:
            raise ValueError(f"{UNROUTED_CONSUMER!r} is reserved (the consumer of unroutable triggers)")
        self.tracks = list(tracks)
        self.settings = settings or load_settings()
        self.name = name
        self._user_middleware = list(middleware)
        self._failure_handling = failure_handling
        self._migrate = migrate
        self.workers: dict[str, TrackWorker] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self.nc: NATS | None = None
        self.pool: asyncpg.Pool | None = None
        self.ledger: Ledger | None = None
        self._announcer: BreakerAnnouncer | None = None
        self._webhook: AlertWebhook | None = None
        self.runs: Runs | None = None
        self.payloads: PayloadStore | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._strays: StrayCatcher | None = None
        self._stray_loop: asyncio.Task[None] | None = None
        self._door: DeadLetterDoor | None = None
        self._resources: asyncio.Task[None] | None = None
        self.guard: ResourceGuard | None = None
        """Pauses fetching under CPU pressure, stops on too much memory (TRACKS_GUARD_*); None: off."""
        self._guarding: asyncio.Task[None] | None = None
        self.idle_trim: IdleTrim | None = None
        self._trimmer: asyncio.Task[None] | None = None
        self.advisories: MaxDeliveriesWatcher | None = None
        self.alerts: AlertMonitor | None = None
        self.api: ApiService | None = None
        self.metrics: RuntimeMetrics | None = None
        """``/metrics``, ``/healthz``, ``/readyz`` (TRACKS_HTTP_PORT) and OTLP metrics, when on."""
        self.cancellations: CancelListener | None = None
        self._alert_settings = alert_settings or load_alert_settings()
        for track in self.tracks:  # refuse contradictory settings before connecting to anything
            resolve(track, self.settings)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    # --- initialize ----------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        telemetry.configure_tracing(self.name, lean_spans=s.lean_spans)
        self.metrics = await RuntimeMetrics.open(self)  # first: /readyz says what start-up still lacks
        if s.gc_tuning:
            tune_gc()
        if not s.nats_url or not s.database_url:
            raise ValueError(
                "a Runtime needs TRACKS_NATS_URL and TRACKS_DATABASE_URL (settings.nats_url / database_url); "
                "`tracks actor run` starts the embedded default when they are unset"
            )
        self.nc = await connect_nats(s, s.nats_url, name=self.name, on_closed=self._nats_closed)
        js = self.nc.jetstream()
        await ensure_streams(
            js,
            tracks_stream(
                max_age_s=s.stream_max_age_s,
                duplicate_window_s=s.duplicate_window_s,
                replicas=s.stream_replicas,
                max_bytes=s.stream_max_bytes,
            ),
            dlq_stream(max_age_s=s.dlq_max_age_s, replicas=s.stream_replicas, max_bytes=s.dlq_max_bytes),
        )
        self.pool = await create_pool(
            s.database_url, max_size=s.db_pool_size, batch_joins=True, wait_s=s.connect_wait_s
        )
        await self.check_schema(self.pool, migrate_if_behind=self._migrate)
        self.ledger = Ledger(
            self.pool,
            max_batch=s.records_batch,
            linger_s=s.records_linger_ms / 1000,
            redact=load_redactor(s.redact),
            record_payloads=s.record_payloads,
        )
        self.ledger.start()
        await self.ledger.store_definitions(StepPlan.of(t).definition for t in self.tracks)
        publisher = EventPublisher(js, give_up_s=min(30.0, s.ack_wait_s / 2))
        self._webhook = webhook_from(self._alert_settings)  # TRACKS_ALERT_WEBHOOK_URL
        self._announcer = BreakerAnnouncer(self.ledger, publisher, self._webhook)
        self.runs = Runs(self.pool, publisher)
        self.runs.start()
        self.payloads = PayloadStore(
            js,
            threshold_bytes=s.payload_threshold_bytes,
            ttl_s=s.payload_ttl_s,
            replicas=s.stream_replicas,
            max_bytes=s.payload_max_bytes,
        )
        await self.payloads.ensure()  # its replicas and TTL as configured, as the streams'
        self._door = DeadLetterDoor(self.ledger, publisher, self.runs, self.payloads)
        for track in self.tracks:
            worker = self._worker(track, publisher)
            await worker.source.start()
            self.workers[track.name] = worker
        self.cancellations = CancelListener(self.nc, self.pool, self.workers)  # ctx.cancelled
        await self.cancellations.start()
        # listening before the first fetch: a message whose last delivery died with an earlier
        # process is given up (and advised) when its ack_wait ends, maybe right now
        self.advisories = MaxDeliveriesWatcher(
            self.nc, js, self.ledger, publisher, self._door, list(self.workers)
        )
        await self.advisories.start()
        self._sweep = UnsettledSweep(
            js, self.ledger, self._door, {name: w.config.ack_wait_s for name, w in self.workers.items()}
        )
        self._strays = StrayCatcher(self.nc, js, self._door)
        await self._strays.start()
        self._stray_loop = asyncio.create_task(self._strays.run(self._stop), name="unrouted")
        self._sweeper = asyncio.create_task(
            self._sweep.run(s.sweep_interval_s, self._stop), name="unsettled-sweep"
        )
        self.alerts = AlertMonitor(
            js,
            self.pool,
            publisher,
            self._alert_settings,
            list(self.workers),
            webhook=self._webhook,
            source=f"{socket.gethostname()}:{os.getpid()}",
        )
        self.alerts.start()
        set_current_runtime(self)  # handlers reach this runtime's connections (current_runtime())
        self._loops = [
            asyncio.create_task(w.run(), name=f"track-{w.track.name}") for w in self.workers.values()
        ]
        self._reaper = asyncio.create_task(self._reap_timeouts(), name="run-timeouts")
        monitor = ResourceMonitor("actor", f"{socket.gethostname()}-{os.getpid()}")
        self._resources = asyncio.create_task(
            report_resources(self.nc, monitor, s.metrics_interval_s, self._stop), name="resources"
        )
        self.guard = ResourceGuard.from_settings(
            s,
            self.workers,
            publisher,
            on_memory=self.request_stop,
            instance=monitor.instance,
            webhook=self._webhook,
        )
        if self.guard is not None:
            self._guarding = asyncio.create_task(self.guard.run(self._stop), name="resource-guard")
        if s.idle_trim_s:  # memory after a burst back to the OS (glibc only)
            self.idle_trim = IdleTrim(s.idle_trim_s)
            self._trimmer = asyncio.create_task(self.idle_trim.run(self._stop), name="idle-trim")
        for task in self._loops:
            task.add_done_callback(self._loop_ended)
        self.api = ApiService(self.nc, self.pool, workflows_of(self.tracks))
        await self.api.start()
        log.info("runtime %s started tracks %s", self.name, ", ".join(self.workers))

    def _nats_closed(self, error: Exception | None) -> None:
        """nats-py closed the connection for good (see :func:`connect_nats`): nothing more can be
        fetched or acked, so the runtime stops as if a loop crashed: :meth:`serve` raises."""
        from foundation.connections import describe_error

        reason = f"the NATS connection was closed for good (last error: {describe_error(error)})"
        log.critical("%s; stopping the runtime", reason)
        if self._stop.is_set():
            return

        async def closed() -> None:
            raise ConnectionError(reason)

        task = asyncio.create_task(closed(), name="nats-connection")
        task.add_done_callback(lambda _: self._stop.set())
        self._loops.append(task)

    @staticmethod
    async def check_schema(pool: asyncpg.Pool, *, migrate_if_behind: bool) -> None:
        """Embedded (development) databases are migrated; others must be, explicitly, first."""
        async with pool.acquire() as conn:
            missing = await pending(conn)
            if not missing:
                return
            if migrate_if_behind:
                await migrate(conn)
                return
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in missing)
        raise SchemaError(f"the database schema is behind ({names} not applied): run `tracks db migrate`")

    def _worker(self, track: Track, publisher: EventPublisher) -> TrackWorker:
        assert self.nc is not None and self.ledger is not None and self._announcer is not None
        assert self.payloads is not None and self.pool is not None and self.runs is not None
        return assemble_worker(
            track,
            WorkerParts(
                self.nc,
                self.settings,
                self.ledger,
                publisher,
                self._announcer,
                self.payloads,
                self.pool,
                self.runs,
                self._door,
                self._user_middleware,
                self._failure_handling,
            ),
        )

    async def _reap_timeouts(self) -> None:
        """Every runtime looks; the UPDATE's row locks let exactly one mark each late run."""
        assert self.runs is not None
        while True:
            await asyncio.sleep(self.settings.run_timeout_check_s)
            try:
                await self.runs.reap_timeouts()
            except Exception as exc:  # the database may be away: try again next round
                log.warning("checking workflow deadlines failed: %s", exc)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s crashed; stopping the runtime", task.get_name(), exc_info=task.exception())
            self._stop.set()

    # --- execute -------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until SIGTERM / SIGINT (or :meth:`request_stop`)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stop, *self._loops], return_when=asyncio.FIRST_COMPLETED)
            for task in self._loops:
                if task.done() and task.exception():
                    raise RuntimeError(f"{task.get_name()} crashed") from task.exception()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        log.info("stopping: no new messages are fetched; in-flight steps may finish")
        self._stop.set()

    # --- shutdown ------------------------------------------------------------------------

    async def shutdown(self) -> None:
        if self.api is not None:
            await self.api.stop()
        if self._reaper is not None:
            self._reaper.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._stray_loop is not None:
            self._stray_loop.cancel()
            await asyncio.gather(self._stray_loop, return_exceptions=True)
        if self._strays is not None:
            await self._strays.close()
        if self._resources is not None:
            self._resources.cancel()
        if self._guarding is not None:
            self._guarding.cancel()
        if self._trimmer is not None:
            self._trimmer.cancel()
        for worker in self.workers.values():
            worker.stop_fetching()
        if self._loops:
            await asyncio.gather(*self._loops, return_exceptions=True)
        abandoned = 0
        for worker in self.workers.values():
            abandoned += await worker.finish_inflight(self.settings.shutdown_grace_s)
        if abandoned:
            log.warning(
                "%d step(s) did not finish within %.0fs; they were nak'ed for redelivery",
                abandoned,
                self.settings.shutdown_grace_s,
            )
        if self.cancellations is not None:
            await self.cancellations.stop()  # after the steps it may tell
        if self.alerts is not None:
            await self.alerts.stop()
        if self.advisories is not None:
            await self.advisories.stop()
        if self._announcer is not None:
            await self._announcer.close()
        if self._webhook is not None:  # deliveries under way, each bounded by its timeout
            await self._webhook.close()
        if self.runs is not None:  # leaf checks still queued; bounded like the ledger below
            await self.runs.close(timeout_s=self.settings.shutdown_grace_s)
        if self.ledger is not None:  # bounded: with PostgreSQL away it would wait forever
            dropped = await self.ledger.close(timeout_s=self.settings.shutdown_grace_s)
            if dropped:
                log.warning(
                    "%d record(s) could not be written within %.0fs (database unavailable?) and were "
                    "dropped; no step was acked without its outcome recorded",
                    dropped,
                    self.settings.shutdown_grace_s,
                )
        if self.pool is not None:
            await self.pool.close()
        if self.nc is not None and not self.nc.is_closed:
            if self.nc.is_connected:
                await self.nc.drain()
            else:  # NATS is away: drain() would raise; what is unacked is redelivered anyway
                try:
                    await self.nc.close()
                except OSError as exc:  # nats-py flushes its buffer into the lost socket
                    log.debug("closing the NATS connection: %s", exc)
        if self.metrics is not None:
            await self.metrics.close()
        telemetry.shutdown_tracing()
