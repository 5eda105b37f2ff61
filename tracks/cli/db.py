"""``tracks db migrate``: apply the SQL files in ``migrations/``."""

from __future__ import annotations

import asyncpg
import click

from foundation.connections import describe_error, server_address
from foundation.db import init_connection, migrate
from tracks.cli._common import ServerUnreachable, async_command, get_settings
from tracks.endpoints import resolve_endpoints

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@async_command
async def migrate_cmd() -> None:
    """Apply pending migrations (idempotent; safe to run from several processes at once)."""
    settings = get_settings()
    dsn = resolve_endpoints(settings).database_url  # the embedded default is started, as documented
    try:
        conn = await asyncpg.connect(dsn, timeout=settings.connect_timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
        reason = (
            f"no answer within {settings.connect_timeout_s:g}s"
            if isinstance(exc, TimeoutError)
            else describe_error(exc)
        )
        raise ServerUnreachable(f"cannot reach PostgreSQL at {server_address(dsn)}: {reason}") from None
    try:
        await init_connection(conn)
        applied = await migrate(conn)
    finally:
        await conn.close()
    for m in applied:
        click.echo(f"applied {m.version:04d}_{m.name}")
    click.echo("schema up to date" if not applied else f"{len(applied)} migration(s) applied")
