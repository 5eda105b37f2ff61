"""Live schedule changes: PostgreSQL LISTEN/NOTIFY on a dedicated connection, healed after restarts.

The trigger of migration 0004 notifies ``tracks_job_schedules`` with ``{op, id, name}`` on every
insert, update and delete. Notifications are handled one at a time, in order. After every
(re)connect — once LISTEN is active, so nothing falls between — a full resync runs, because
changes made while the connection was down were never delivered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

__all__ = ["CHANNEL", "ScheduleChange", "ScheduleListener"]

log = logging.getLogger(__name__)

CHANNEL = "tracks_job_schedules"


@dataclass(frozen=True)
class ScheduleChange:
    op: str
    """INSERT | UPDATE | DELETE"""
    id: uuid.UUID
    name: str


class ScheduleListener:
    def __init__(
        self,
        dsn: str,
        *,
        on_change: Callable[[ScheduleChange], Awaitable[None]],
        on_resync: Callable[[], Awaitable[None]],
        ping_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self._on_resync = on_resync
        self._ping_s = ping_s
        self._queue: asyncio.Queue[ScheduleChange | None] = asyncio.Queue()
        self.ready = asyncio.Event()
        """Set once the first LISTEN is active and the first resync is done."""
        self.connections = 0
        self.failures = 0
        self.backend_pid: int | None = None
        self._retry_s = 1.0

    async def run(self, stop: asyncio.Event) -> None:
        worker = asyncio.create_task(self._drain())
        backoff = 0.2
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                    backoff = 0.2
                except Exception as exc:  # whatever broke the session, LISTEN again: changes must flow
                    log.warning("schedule listener: %r; reconnecting in %.1f s", exc, backoff)
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _session(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._notified)
            self.connections += 1
            self.backend_pid = conn.get_server_pid()
            self._queue.put_nowait(None)  # resync, in order with notifications
            while not stop.is_set() and not lost.is_set():
                await _sleep_or_stop(stop, self._ping_s, lost)
                if not stop.is_set() and not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self._ping_s)
            if lost.is_set() and not stop.is_set():
                raise ConnectionError("LISTEN connection lost")
        finally:
            conn.terminate() if lost.is_set() else await _close(conn)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            data = json.loads(str(payload))
            self._queue.put_nowait(ScheduleChange(data["op"], uuid.UUID(data["id"]), data["name"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("schedule listener: bad notification %r: %s", payload, exc)

    async def _drain(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                if change is None:
                    await self._on_resync()
                    self.ready.set()
                else:
                    await self._on_change(change)
            except Exception as exc:
                # PostgreSQL may be half back (the pool's old connections fail once): resync soon.
                log.warning("schedule listener: applying %s failed (%s); resyncing", change or "resync", exc)
                self.failures += 1
                await asyncio.sleep(self._retry_s)
                self._queue.put_nowait(None)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float, *more: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in (stop, *more)]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2)
    except (OSError, asyncpg.InterfaceError, TimeoutError):
        conn.terminate()
