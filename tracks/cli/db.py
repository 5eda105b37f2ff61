"""``tracks db migrate``: apply the SQL files in ``migrations/``."""

from __future__ import annotations

import asyncpg
import click

from foundation.db import init_connection, migrate
from tracks.cli._common import async_command, get_settings
from tracks.endpoints import resolve_endpoints

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@async_command
async def migrate_cmd() -> None:
    """Apply pending migrations (idempotent; safe to run from several processes at once)."""
    endpoints = resolve_endpoints(get_settings())
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        await init_connection(conn)
        applied = await migrate(conn)
    finally:
        await conn.close()
    for m in applied:
        click.echo(f"applied {m.version:04d}_{m.name}")
    click.echo("schema up to date" if not applied else f"{len(applied)} migration(s) applied")
