"""asyncpg pools with JSON codecs, so jsonb columns take and give Python objects."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

__all__ = ["create_pool", "init_connection"]


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


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 8, key_lookups: bool = False
) -> asyncpg.Pool:
    """``key_lookups``: connections for the runtime's hot path, whose statements all find rows by
    key. They run with ``enable_seqscan=off`` because a table that grows from empty within
    seconds (a new deployment's first burst, ``tracks bench``) has statistics that still say
    "empty", and the planner then joins each batch by scanning the whole table: measured in
    one 20,000-run benchmark, 8,500 sequential scans read 355 million ``track_steps`` rows and
    the leaf track ran at half speed. PostgreSQL still scans where no index applies.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        command_timeout=60,
        server_settings={"enable_seqscan": "off"} if key_lookups else None,
    )
    assert pool is not None
    return pool
