"""asyncpg pools with JSON codecs, so jsonb columns take and give Python objects."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import asyncpg

from foundation.backoff import Backoff
from foundation.redact import describe_error, server_address

__all__ = ["create_pool", "init_connection"]

log = logging.getLogger(__name__)

_UNAVAILABLE = (
    OSError,  # refused, reset, unknown host
    TimeoutError,
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.TooManyConnectionsError,
    asyncpg.PostgresConnectionError,
)
"""What a PostgreSQL that is not (yet) there answers; anything else (a wrong password, a
database that does not exist) will not change by waiting and is raised at once."""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=_dumps, decoder=json.loads, schema="pg_catalog")


async def keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is, without asyncpg's reset query.

    The default reset (``UNLISTEN *; RESET ALL; pg_advisory_unlock_all() ...``) is a round
    trip on every release, i.e. once per group-commit batch on the hot path. Nothing here
    changes session state on a pooled connection: LISTEN has its own connection, advisory
    locks are transaction-scoped or released in ``finally``, and nothing runs ``SET``.
    asyncpg still rolls back a transaction left open and drops client-side listeners.
    """


_BATCH_JOINS = {"enable_nestloop": "off", "enable_seqscan": "off"}


class _QuietFloorRetries(logging.Filter):
    """asyncpg logs "Failed to restore the pool connection floor" with a full traceback about once a
    second per pool while PostgreSQL is away: one line without the traceback, at most every 30 s."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if "connection floor" not in record.getMessage():
            return True
        now = time.monotonic()
        if now - self._last < 30.0:
            return False
        self._last = now
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            record.args = None
        record.exc_info = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_QuietFloorRetries())


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    batch_joins: bool = False,
    wait_s: float = 0.0,
    connect_timeout_s: float = 60.0,
) -> asyncpg.Pool:
    """``wait_s``: how long to wait for PostgreSQL to accept connections (a process that starts
    with its database, or before it). One warning says so, attempts repeat with back-off (0.1 s
    doubling to 2 s), and past the bound a :class:`ConnectionError` names the server; never
    the DSN's user or password. ``0``: one attempt of at most ``connect_timeout_s`` (a CLI
    command: ``tracks --connect-timeout``), its error raised as asyncpg raises it.

    ``batch_joins``: connections for the runtime, whose hot statements each take a batch of
    hundreds of keys (ledger claims and outcomes, run completions; see :mod:`actors.ledger.sql`) and
    bound every table access by them. Two planner settings keep those plans right whatever the
    statistics say and however long a cached plan lives (a connection keeps a generic plan made
    when the tables were small):

    - ``enable_nestloop=off``: a batch is joined to the rows its keys found by hash, never by
      looping over one side once per row of the other. On statistics that said "empty" (taken
      just after a bulk delete) the planner chose such loops: 160,000 comparisons for a batch
      of 400 (measured).
    - ``enable_seqscan=off``: a plan cached while a table had a few pages scanned it whole
      later, at 80,000 rows (measured).

    PostgreSQL still loops or scans where nothing else can do, and a correlated subquery (one
    keyed lookup per row) is not a join.
    """
    started = time.monotonic()
    backoff, announced = Backoff(), False
    while True:
        left = wait_s - (time.monotonic() - started)
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=init_connection,
                reset=keep_session,
                command_timeout=60,
                server_settings=_BATCH_JOINS if batch_joins else None,
                # asyncpg's default connect timeout, and no attempt outlasts the wait
                timeout=min(connect_timeout_s, max(1.0, left)) if wait_s > 0 else connect_timeout_s,
            )
        except _UNAVAILABLE as exc:
            if wait_s <= 0:
                raise
            left = wait_s - (time.monotonic() - started)
            if left <= 0:
                raise ConnectionError(
                    f"PostgreSQL at {server_address(dsn)} did not answer within {wait_s:g}s "
                    f"({describe_error(exc)})"
                ) from None
            if not announced:  # one line for the whole wait, not one per attempt
                announced = True
                log.warning(
                    "waiting for PostgreSQL at %s (%s); giving up in %gs",
                    server_address(dsn),
                    describe_error(exc),
                    wait_s,
                )
            await asyncio.sleep(min(backoff.next(), left))
            continue
        assert pool is not None
        if announced:
            log.info("PostgreSQL at %s answered after %.1fs", server_address(dsn), time.monotonic() - started)
        return pool
