"""Plain-SQL migrations, applied in order, recorded with a checksum, under an advisory lock.

A file ``migrations/NNNN_name.sql`` is applied once, in its own transaction. Two processes
migrating at once serialise on an advisory lock; the second finds nothing left to do.
An applied file whose text changed afterwards is an error, never silently re-run.

A file whose first line is ``-- migrate: no transaction`` is applied one statement at a time
outside a transaction, for what PostgreSQL refuses inside one: ``CREATE INDEX CONCURRENTLY``
builds an index on a big table without blocking the actors' writes. Its statements end with
``;`` at the end of a line (no ``;``-terminated line inside a statement), and each must be safe
to run again: a file interrupted half-way is not recorded, and runs again from its start.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

__all__ = [
    "NO_TRANSACTION",
    "Migration",
    "MigrationError",
    "discover",
    "migrate",
    "migrations_dir",
    "pending",
]

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A plain connection or one lent by a pool: the migrator needs only ``execute`` and ``fetch``."""

_LOCK_KEY = 0x7472_6B73  # "trks"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


NO_TRANSACTION = "-- migrate: no transaction"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.startswith(NO_TRANSACTION)

    def statements(self) -> list[str]:
        """The statements of a non-transactional file: each ends with ``;`` at a line's end."""
        found: list[str] = []
        current: list[str] = []
        for line in self.sql.splitlines():
            if not line.strip() or line.lstrip().startswith("--"):
                continue  # comments and blank lines between and inside statements
            current.append(line)
            if line.rstrip().endswith(";"):
                found.append("\n".join(current))
                current = []
        if current:
            raise MigrationError(f"{self.version:04d}_{self.name}: its last statement does not end with ';'")
        return found


def migrations_dir() -> Path:
    """The repository's ``migrations/`` in a checkout, else the copy packed into the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files("foundation") / "_migrations"))


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version in {directory}")
    return found


async def migrate(conn: Conn, directory: Path | None = None) -> list[Migration]:
    """Apply what is pending; return the migrations applied by this call."""
    pending = discover(directory)
    applied_now: list[Migration] = []
    # Polled, not waited for inside a statement: a session waiting in pg_advisory_lock holds a
    # snapshot, which the other migrator's CREATE INDEX CONCURRENTLY waits for: a deadlock.
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        }
        for migration in pending:
            known = done.get(migration.version)
            if known is not None:
                if known["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            if migration.transactional:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await _record(conn, migration)
            else:
                for statement in migration.statements():
                    await conn.execute(statement)
                await _record(conn, migration)
            applied_now.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def _record(conn: Conn, migration: Migration) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        migration.version,
        migration.name,
        migration.checksum,
    )


async def pending(conn: Conn, directory: Path | None = None) -> list[Migration]:
    """Migrations not applied yet (all of them on an empty database)."""
    known = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = (
        {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")} if known else set()
    )
    return [m for m in discover(directory) if m.version not in applied]
