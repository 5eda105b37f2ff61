"""The migrator: ordered, idempotent, race-free, and strict about edited history."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from actors import Runtime, Workflow
from actors.runtime.process import SchemaError
from foundation.db import MigrationError, discover, migrate, migrations_dir, pending


async def test_applies_all_in_order_then_nothing(fresh_db):
    conn = await asyncpg.connect(fresh_db)
    try:
        first = await migrate(conn)
        assert [m.version for m in first] == [m.version for m in discover()]
        assert await migrate(conn) == []
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
        assert {"processing_logs", "track_steps", "job_schedules", "job_executions"} <= tables
        assert await pending(conn) == []
    finally:
        await conn.close()


async def test_two_migrators_at_once_apply_each_file_once(fresh_db):
    conns = [await asyncpg.connect(fresh_db) for _ in range(2)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [m.version for r in results for m in r]
        assert sorted(applied) == [m.version for m in discover()]  # each once, whoever did it
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(discover())
    finally:
        for c in conns:
            await c.close()


async def test_an_edited_applied_migration_is_refused(fresh_db, tmp_path: Path):
    copy = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), copy)
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, copy)
        first = sorted(copy.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, copy)
    finally:
        await conn.close()


async def test_badly_named_file_is_refused(tmp_path: Path):
    (tmp_path / "1_init.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"NNNN_lower_snake\.sql"):
        discover(tmp_path)


async def test_runtime_refuses_an_unmigrated_database(fresh_db, settings):
    wf = Workflow("schema-check")

    @wf.track(f"schema-{uuid.uuid4().hex[:6]}")
    async def noop(ctx, payload: dict) -> dict:
        return payload

    runtime = Runtime(list(wf), settings=settings.model_copy(update={"database_url": fresh_db}))
    with pytest.raises(SchemaError, match="run `tracks db migrate`"):
        await runtime.start()
    await runtime.shutdown()
