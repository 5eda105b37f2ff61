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


_BATCH_JOINS = {"enable_nestloop": "off", "enable_seqscan": "off"}


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 8, batch_joins: bool = False
) -> asyncpg.Pool:
    """``batch_joins``: connections for the runtime, whose hot statements each take a batch of
    hundreds of keys (ledger claims and outcomes, run completions; see :mod:`actors.ledger_sql`) and
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
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        command_timeout=60,
        server_settings=_BATCH_JOINS if batch_joins else None,
    )
    assert pool is not None
    return pool
