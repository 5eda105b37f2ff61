"""What the console holds while it serves: the connections, made as every command makes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from nats.aio.client import Client as NATS

from foundation.jetstream.publisher import EventPublisher
from foundation.settings import Settings
from tracks.cli._connect import open_nats, open_pool
from tracks.cli.top import Scrape, _scrape

__all__ = ["Console", "open_console"]


@dataclass
class Console:
    """The console's connections and options; one per process, shared by every request."""

    settings: Settings
    pool: asyncpg.Pool
    nc: NATS
    metrics_urls: Sequence[str] = ()
    jaeger_url: str | None = None
    token: str | None = None
    metrics_timeout_s: float = 2.0
    _scrapes: list[Scrape] = field(default_factory=list)

    @property
    def publisher(self) -> EventPublisher:
        return EventPublisher(self.nc.jetstream())

    async def scrape(self) -> tuple[Scrape, Scrape]:
        """The latest ``/metrics`` of every URL and an earlier one to take rates from (the same
        one on the first call); :class:`~tracks.cli._common.UserError` when a URL does not answer."""
        now = await asyncio.to_thread(_scrape, list(self.metrics_urls), self.metrics_timeout_s)
        earlier = [s for s in self._scrapes if now.at - s.at >= 1.0]
        before = earlier[-1] if earlier else (self._scrapes[0] if self._scrapes else now)
        self._scrapes = [*[s for s in self._scrapes if now.at - s.at < 60.0], now][-20:]
        return before, now

    def scraped_at(self) -> float:
        return self._scrapes[-1].at if self._scrapes else time.monotonic()


@asynccontextmanager
async def open_console(
    settings: Settings,
    *,
    metrics_urls: Sequence[str] = (),
    jaeger_url: str | None = None,
    token: str | None = None,
) -> AsyncIterator[Console]:
    """PostgreSQL and NATS as the read commands find them (configured, or the embedded default a
    ``tracks dev up`` or ``make demo`` left running: never started here), each within the
    connect timeout; else the one-line errors of :mod:`tracks.cli._connect`."""
    pool = await open_pool(settings, max_size=4)
    try:
        nc = await open_nats(settings, name="tracks-console")
        try:
            yield Console(settings, pool, nc, metrics_urls, jaeger_url, token)
        finally:
            if not nc.is_closed:
                await nc.drain()
    finally:
        await pool.close()
