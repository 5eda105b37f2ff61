"""Group commit: many concurrent callers, one database round trip per batch.

Callers ``await enqueue(item)`` and get their item's result once the batch holding it was
written. While one batch is written the next one fills up, so batches grow with load and
latency stays one round trip when idle. Transient database failures are retried with
back-off, forever, while callers wait. Memory stays bounded without a buffer limit here:
the runtime fetches no new message while its in-flight slots are taken, and each in-flight
step queues at most a few rows, so an outage becomes back-pressure, never loss. A written
batch is let go at once: a writer waiting for the next one keeps no items, so a burst's last
batches (up to ``max_batch`` payloads each) do not stay in memory through the idle time after it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg
from asyncpg.exceptions._base import InternalClientError

from foundation import metrics
from foundation.backoff import Backoff

__all__ = ["COMMIT_WAIT", "GroupCommit", "is_transient"]

COMMIT_WAIT = "tracks_commit_wait_seconds"

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

# SQLSTATE classes that say "the server or the connection", not "your data".
_TRANSIENT_CLASSES = ("08", "53", "57", "58", "40")


def is_transient(exc: BaseException) -> bool:
    """Says "the server or the connection", not "your data": retried, never handed to the caller.

    ``InternalClientError`` ("cannot switch to state ...; another operation is in progress") is
    what asyncpg raises on a pooled connection that just received the server's shutdown notice
    (seen when PostgreSQL stops under load): the connection is unusable, the statement was not
    run, and it is safe to try again on another one.
    """
    if isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | ConnectionError | InternalClientError
    ):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in _TRANSIENT_CLASSES
    return False


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 500,
        parallel: int = 1,
        linger_s: float = 0.0,
    ) -> None:
        self._write = write
        self.name = name
        self._max_batch = max_batch
        self._queue: collections.deque[tuple[T, asyncio.Future[R]]] = collections.deque()
        self._waits: metrics.Observing | None = None
        """``tracks_commit_wait_seconds{writer=<name>}`` when metrics are on: each item's time
        from :meth:`enqueue` to its batch's commit (queueing behind the batch in flight included)."""
        self._ready = asyncio.Event()
        self._parallel = parallel
        self._linger_s = linger_s
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.failures = 0
        """Transient write failures seen (each retried)."""
        self.batches = 0
        self.dropped = 0
        """Items given up on by :meth:`close` (never written)."""

    def start(self) -> None:
        if metrics.enabled():
            doc = "Time from queueing a row to its batch's commit."
            waits = metrics.histogram(COMMIT_WAIT, doc, ("writer",), metrics.WAIT_BUCKETS)
            self._waits = waits.labels(self.name)
        self._tasks = [
            asyncio.create_task(self._run(), name=f"{self.name}-{i}") for i in range(self._parallel)
        ]

    def enqueue(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves once it is written (await it, or not)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._waits is not None:
            future.add_done_callback(_WaitTimer(self._waits, loop.time()))
        self._queue.append((item, future))
        self._ready.set()
        return future

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def close(self, timeout_s: float | None = None) -> int:
        """Write what is queued, then stop; return how many items were dropped unwritten.

        Transient failures are retried forever, so with the database away this would never
        return: after ``timeout_s`` the writers are cancelled, and what they had not written
        is dropped (callers still waiting for it are cancelled).
        """
        self._closing = True
        self._ready.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, future in self._queue:
            future.cancel()
        self.dropped += len(self._queue)
        self._queue.clear()
        return self.dropped

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            if self._linger_s:
                await asyncio.sleep(self._linger_s)
            else:
                await asyncio.sleep(0)  # let callers scheduled in this loop turn join the batch
            if not self._queue:  # a parallel writer, woken too, took it all: no empty round trip
                continue
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            try:
                await self._write_batch(batch)
            except asyncio.CancelledError:  # close() gave up on an unavailable database
                for _, future in batch:
                    future.cancel()
                self.dropped += len(batch)
                raise
            # Not kept while this writer waits for the next batch: the items (payloads and all)
            # and their futures' results would otherwise live on through an idle spell.
            del batch

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        backoff = Backoff(first_s=0.05)
        while True:
            try:
                results = await self._write(items)
                break
            except Exception as exc:
                if is_transient(exc):
                    self.failures += 1
                    delay = backoff.next()
                    log.warning("%s: database unavailable (%s); retrying in %.1fs", self.name, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                if len(batch) > 1:  # find the bad item; the others still get written
                    for one in batch:
                        await self._write_batch([one])
                    return
                self._settle(batch, error=exc)
                return
        self.batches += 1
        self._settle(batch, results=results)

    def _settle(
        self,
        batch: list[tuple[T, asyncio.Future[R]]],
        results: Sequence[R] | None = None,
        error: BaseException | None = None,
    ) -> None:
        for i, (_, future) in enumerate(batch):
            if not future.done():
                if error is not None:
                    future.set_exception(error)
                else:
                    assert results is not None
                    future.set_result(results[i])


class _WaitTimer:
    """A future's done-callback observing the time since it was queued (one object, no closure)."""

    __slots__ = ("_histogram", "_since")

    def __init__(self, histogram: metrics.Observing, since: float) -> None:
        self._histogram = histogram
        self._since = since

    def __call__(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            self._histogram.observe(future.get_loop().time() - self._since)
