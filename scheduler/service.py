"""The scheduler process: APScheduler fires enabled schedules from PostgreSQL; it only publishes.

Lifecycle is an async context manager. On start it registers the standard schedules (if on),
creates the history consumer, starts APScheduler, and LISTENs for schedule changes; the first
resync loads every enabled schedule and catches up ticks missed while no scheduler ran.
Several replicas may run at once: ticks are decided once in PostgreSQL and de-duplicated by
JetStream (see :mod:`scheduler.executions` and :mod:`scheduler.publisher`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType

import asyncpg
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from nats.aio.client import Client as NATS

from foundation.connections import describe_error
from foundation.monitoring import ResourceMonitor, report_resources
from scheduler.executions import ExecutionStore, Finished
from scheduler.executor import TickExecutor
from scheduler.history import HistoryConsumer
from scheduler.listener import ScheduleChange, ScheduleListener
from scheduler.metrics import SchedulerMetrics
from scheduler.misfire import plan_catch_up, plan_due
from scheduler.publisher import Route, TickPublisher, track_route
from scheduler.schedules import InvalidSchedule, Schedule, ScheduleStore
from scheduler.settings import SchedulerSettings
from scheduler.standard import standard_schedules
from scheduler.ticks import TickFirer, TickStats
from scheduler.trigger import CrontabTrigger

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

_MAX_UNCLAIMED = 10_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        *,
        nc: NATS,
        pool: asyncpg.Pool,
        dsn: str,
        settings: SchedulerSettings | None = None,
        route: Route = track_route,
        duplicate_window_s: float = 120.0,
        clock: Callable[[], datetime] = _utcnow,
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
    ) -> None:
        """``http_port``: serve ``/metrics``, ``/healthz`` and ``/readyz`` there (TRACKS_HTTP_PORT)."""
        self.settings = settings or SchedulerSettings()
        self._nc = nc
        self.pool = pool
        self._http = (http_host, http_port)
        self.metrics: SchedulerMetrics | None = None
        self._clock = clock
        self.schedules = ScheduleStore(pool)
        self.executions = ExecutionStore(pool, instance=self.settings.instance)
        js = nc.jetstream()
        self.firer = TickFirer(self.executions, TickPublisher(js, route), follow_s=duplicate_window_s / 2)
        self._executor = TickExecutor()
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            executors={"default": self._executor},
            job_defaults={"coalesce": False, "max_instances": 1000, "misfire_grace_time": None},
        )
        self._listener = ScheduleListener(
            dsn, on_change=self._on_change, on_resync=self._resync, ping_s=self.settings.listen_ping_s
        )
        self._history = HistoryConsumer(
            js, self.executions, durable=self.settings.history_consumer, on_finished=self._on_finished
        )
        self.monitor = ResourceMonitor("scheduler", self.settings.instance)
        self._loaded: dict[uuid.UUID, Schedule] = {}
        self.invalid = 0
        """Schedules left out because their cron or time zone is invalid (edited by SQL)."""
        self._unclaimed: dict[uuid.UUID, list[datetime]] = {}
        """Ticks whose claim failed (database down), retried by the sweep and by the next tick."""
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: ConnectionError | None = None
        """Set when the NATS connection closed for good under the running scheduler."""
        self._owner: asyncio.Task[object] | None = None
        self._interrupted_owner = False

    @property
    def stats(self) -> TickStats:
        return self.firer.stats

    @property
    def loaded(self) -> dict[uuid.UUID, Schedule]:
        """The enabled schedules this process fires, by ID."""
        return dict(self._loaded)

    @property
    def history(self) -> HistoryConsumer:
        return self._history

    @property
    def listener(self) -> ScheduleListener:
        return self._listener

    @property
    def nc(self) -> NATS:
        return self._nc

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Scheduler:
        """Within ``async with``, a NATS connection closed for good interrupts the block (as
        :func:`asyncio.timeout` does): it is cancelled, and leaves with :attr:`failure`, a
        :class:`ConnectionError`, so a process waiting in it for SIGTERM exits non-zero."""
        await self.start()
        if self.failure is not None:
            await self.stop()
            raise self.failure
        self._owner = asyncio.current_task()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        interrupted = (
            self._interrupted_owner
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
            and self._owner is not None
            and self._owner.uncancel() == 0  # not also cancelled by someone else
        )
        self._owner = None
        await self.stop()
        if interrupted and self.failure is not None:
            raise self.failure from None

    async def start(self, *, ready_timeout_s: float = 30.0) -> None:
        self.metrics = await SchedulerMetrics.open(self, *self._http)  # first: /readyz tells start-up
        if self.settings.standard_schedules:
            added = await self.schedules.register(standard_schedules(self.settings.standard_targets))
            if added:
                log.info("registered standard schedules: %s", ", ".join(added))
        await self._history.ensure()
        self.firer.start()
        self._aps.start()
        self._tasks = [
            asyncio.create_task(self._listener.run(self._stop), name="scheduler-listen"),
            asyncio.create_task(self._history.run(self._stop), name="scheduler-history"),
            asyncio.create_task(self._sweep(), name="scheduler-timeouts"),
            asyncio.create_task(
                report_resources(self._nc, self.monitor, self.settings.metrics_interval_s, self._stop),
                name="scheduler-metrics",
            ),
            asyncio.create_task(self._watch_connection(), name="scheduler-nats"),
        ]
        try:
            await asyncio.wait_for(self._listener.ready.wait(), ready_timeout_s)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(
                f"schedules not loaded within {ready_timeout_s} s (is PostgreSQL reachable?)"
            ) from None
        log.info("scheduler %s running %d schedule(s)", self.settings.instance, len(self._loaded))

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop firing, let ticks in flight finish (up to ``grace_s``), then stop the loops."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._aps.running:
            self._aps.pause()
            self._aps.remove_all_jobs()
        cancelled = await self._executor.drain(grace_s)
        if cancelled:
            log.warning("stopped with %d tick(s) unfinished", cancelled)
        for task, result in zip(
            self._tasks, await asyncio.gather(*self._tasks, return_exceptions=True), strict=True
        ):
            if isinstance(result, Exception):
                log.error("%s ended with %s: %s", task.get_name(), type(result).__name__, result)
        if self._aps.running:
            self._aps.shutdown(wait=False)
        await self.firer.close()
        self._loaded.clear()
        if self.metrics is not None:
            await self.metrics.close()

    async def _watch_connection(self, every_s: float = 0.5) -> None:
        """nats-py gives a connection up for good in some cases (the server refused a publish
        over its max_payload, reconnect attempts exhausted): no tick could be published any
        more, so the scheduler says why, once, and interrupts its ``async with`` block."""
        while not self._stop.is_set():
            if self._nc.is_closed:
                reason = (
                    "the NATS connection was closed for good "
                    f"(last error: {describe_error(self._nc.last_error)})"
                )
                log.critical("%s; stopping the scheduler", reason)
                self.failure = ConnectionError(reason)
                if self._owner is not None and not self._owner.done():
                    self._interrupted_owner = True
                    self._owner.cancel()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every_s)

    # --- schedules --------------------------------------------------------------------------

    async def _resync(self) -> None:
        """Load every enabled schedule; drop the rest; catch up on missed ticks."""
        prefix = self.settings.name_prefix
        schedules = await self.schedules.list_all(enabled_only=True, prefix=prefix, on_invalid=self._invalid)
        current = {s.id: s for s in schedules}
        for gone in set(self._loaded) - set(current):
            self._unload(gone)
        last = await self.executions.last_ticks(list(current))
        for schedule in current.values():
            await self._load(schedule, last.get(schedule.id))

    def _invalid(self, exc: InvalidSchedule) -> None:
        self.invalid += 1
        log.error("%s; not firing it", exc)

    async def _on_change(self, change: ScheduleChange) -> None:
        try:
            schedule = None if change.op == "DELETE" else await self.schedules.by_id(change.id)
        except InvalidSchedule as exc:
            self._invalid(exc)
            schedule = None
        if (
            schedule is None
            or not schedule.enabled
            or not schedule.name.startswith(self.settings.name_prefix)
        ):
            if self._unload(change.id):
                log.info("schedule %s unloaded (%s)", change.name, change.op.lower())
            return
        last = await self.executions.last_ticks([schedule.id])
        await self._load(schedule, last.get(schedule.id))
        log.info("schedule %s loaded (%s)", schedule.name, change.op.lower())

    async def _load(self, schedule: Schedule, last_tick: datetime | None) -> None:
        previous = self._loaded.get(schedule.id)
        self._loaded[schedule.id] = schedule
        if previous is None or (previous.cron, previous.timezone) != (schedule.cron, schedule.timezone):
            self._aps.add_job(
                self._tick,
                trigger=CrontabTrigger(schedule.cron, schedule.tz),
                args=(schedule.id,),
                id=str(schedule.id),
                name=schedule.name,
                replace_existing=True,
            )
        await self._catch_up(schedule, last_tick)

    def _unload(self, schedule_id: uuid.UUID) -> bool:
        if self._loaded.pop(schedule_id, None) is None:
            return False
        with contextlib.suppress(JobLookupError):
            self._aps.remove_job(str(schedule_id))
        return True

    async def _catch_up(self, schedule: Schedule, last_tick: datetime | None) -> None:
        """Ticks between the last recorded one (or the last edit) and now follow the misfire policy."""
        anchor = max(t for t in (last_tick, schedule.updated_at) if t is not None)
        plan = plan_catch_up(
            schedule.cron,
            schedule.tz,
            last=anchor,
            now=self._clock(),
            policy=self.settings.misfire_policy,
            grace_s=self._grace(schedule),
            cap=self.settings.max_recorded_skips,
        )
        if plan.fire is not None or plan.skips:
            log.info("%s: catching up after downtime since %s", schedule.name, anchor.isoformat())
            await self.firer.apply(schedule, plan)

    def _grace(self, schedule: Schedule) -> float:
        return (
            schedule.misfire_grace_s
            if schedule.misfire_grace_s is not None
            else self.settings.misfire_grace_s
        )

    # --- ticks ------------------------------------------------------------------------------

    async def _tick(self, schedule_id: uuid.UUID, run_times: Sequence[datetime] = ()) -> None:
        """Called by APScheduler (through :class:`TickExecutor`) with every due run time."""
        schedule = self._loaded.get(schedule_id)
        times = sorted({*self._unclaimed.pop(schedule_id, []), *run_times})
        if schedule is None or self._stop.is_set() or not times:
            return
        try:
            await self.firer.apply(schedule, plan_due(times, _utcnow(), self._grace(schedule)))
        except Exception as exc:
            # PostgreSQL unreachable: keep the ticks; the next attempt coalesces them (claims are idempotent).
            log.error("%s: tick %s not claimed (%s); will retry", schedule.name, times[-1].isoformat(), exc)
            self._unclaimed[schedule_id] = times[-_MAX_UNCLAIMED:]

    async def _retry_unclaimed(self) -> None:
        for schedule_id in list(self._unclaimed):
            await self._tick(schedule_id)

    async def _on_finished(self, finished: Finished) -> None:
        if finished.schedule_id is None:
            return
        schedule = self._loaded.get(finished.schedule_id) or await self.schedules.by_id(finished.schedule_id)
        if schedule is not None:
            await self.firer.release(schedule)

    async def _sweep(self) -> None:
        while not self._stop.is_set():
            try:
                await self._retry_unclaimed()
                for finished in await self.firer.sweep_timeouts(self.settings.job_timeout_s):
                    await self._on_finished(finished)
            except Exception as exc:
                log.warning("timeout sweep failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.sweep_interval_s)
