"""Servers for one-shot commands: bounded waits, one line naming what did not answer.

A command waits at most ``TRACKS_CONNECT_TIMEOUT_S`` (``tracks --connect-timeout``, default 5 s)
for each server, never the minute a starting actor waits (``TRACKS_CONNECT_WAIT_S``), and
connects only to what it needs: a command that reads PostgreSQL never waits for NATS.
Commands that only read or act on what exists never start the embedded servers (exit 4, "no
servers: run `tracks dev up` ..."); those that set things up (``demo``, ``run``, ``actor run``,
``db migrate``, ``scheduler run``) resolve with ``start=True`` as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

import asyncpg

from foundation.db.pool import create_pool
from foundation.redact import describe_error, server_address
from foundation.settings import Settings
from tracks.cli._common import STREAM_HINT, NotSetUp, ServerUnreachable, UserError
from tracks.endpoints import existing_url, resolve_endpoints

if TYPE_CHECKING:  # nats-py is imported by the commands that talk to NATS, not by the others
    from nats.aio.client import Client as NATS

__all__ = ["database_url", "nats_session", "nats_url", "open_nats", "open_pool", "pool_session"]

_PG_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.PostgresConnectionError,
)


def nats_url(settings: Settings, *, start: bool = False) -> str:
    """The NATS to talk to; ``start``: the embedded one is started when none is configured."""
    if start:
        return resolve_endpoints(settings).nats_url
    return existing_url(settings, "nats")


def database_url(settings: Settings, *, start: bool = False) -> str:
    if start:
        return resolve_endpoints(settings).database_url
    return existing_url(settings, "postgres")


async def open_nats(
    settings: Settings, url: str | None = None, *, streams: Sequence[str] = (), name: str = "tracks-cli"
) -> NATS:
    """Connected within ``settings.connect_timeout_s`` (else :class:`ServerUnreachable`), with each of
    ``streams`` present (else :class:`NotSetUp`, before anything is published)."""
    from nats.js.errors import NotFoundError

    from foundation.connections import connect_nats

    url = url or nats_url(settings)
    try:
        nc = await connect_nats(settings, url, name=name, wait_for_server=False)
    except ConnectionError as exc:
        raise ServerUnreachable(str(exc)) from None
    try:
        js = nc.jetstream(timeout=settings.connect_timeout_s)
        for stream in streams:
            try:
                await js.stream_info(stream)
            except NotFoundError:
                raise NotSetUp(
                    f"stream {stream} does not exist on NATS at {server_address(url)}: {STREAM_HINT}"
                ) from None
    except BaseException:
        with suppress(Exception):
            await nc.close()
        raise
    return nc


@asynccontextmanager
async def nats_session(
    settings: Settings, url: str | None = None, *, streams: Sequence[str] = ()
) -> AsyncIterator[NATS]:
    nc = await open_nats(settings, url, streams=streams)
    try:
        yield nc
    finally:
        if not nc.is_closed:
            await nc.drain()


async def open_pool(settings: Settings, url: str | None = None, *, max_size: int = 2) -> asyncpg.Pool:
    """A pool whose first connection came within ``settings.connect_timeout_s``, else
    :class:`ServerUnreachable` naming the server (``host:port``, never the password)."""
    url = url or database_url(settings)
    bound = settings.connect_timeout_s
    try:
        async with asyncio.timeout(bound + 1):  # asyncpg's own timeout covers the connect, not all of it
            return await create_pool(url, max_size=max_size, connect_timeout_s=bound)
    except asyncpg.InvalidAuthorizationSpecificationError as exc:  # wrong password, unknown role
        raise UserError(
            f"PostgreSQL at {server_address(url)} refused the login ({exc}): check TRACKS_DATABASE_URL"
        ) from None
    except _PG_UNAVAILABLE as exc:
        reason = f"no answer within {bound:g}s" if isinstance(exc, TimeoutError) else describe_error(exc)
        raise ServerUnreachable(f"cannot reach PostgreSQL at {server_address(url)}: {reason}") from None


@asynccontextmanager
async def pool_session(
    settings: Settings, url: str | None = None, *, max_size: int = 2
) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(settings, url, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()
