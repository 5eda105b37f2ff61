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


async def test_a_no_transaction_file_builds_indexes_concurrently_and_can_run_again(fresh_db, tmp_path: Path):
    """``CREATE INDEX CONCURRENTLY`` is refused inside a transaction; such a file runs statement
    by statement, is recorded only once every statement ran, and runs again from its start."""
    (tmp_path / "0001_table.sql").write_text("CREATE TABLE t (a int, b int);\n")
    (tmp_path / "0002_index.sql").write_text(
        "-- migrate: no transaction\n"
        "-- a comment between statements\n"
        "DROP INDEX CONCURRENTLY IF EXISTS t_a;\n"
        "CREATE INDEX CONCURRENTLY t_a\n"
        "    ON t (a);\n"
        "CREATE INDEX CONCURRENTLY t_b ON t (nope);\n"  # fails: the file is not recorded
    )
    conn = await asyncpg.connect(fresh_db)
    try:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
        assert await conn.fetchval("SELECT to_regclass('t_a') IS NOT NULL")  # built before the failure
        fixed = (tmp_path / "0002_index.sql").read_text().replace("(nope)", "(b)")
        (tmp_path / "0002_index.sql").write_text(fixed)
        assert [m.version for m in await migrate(conn, tmp_path)] == [2]  # again from its start
        valid = await conn.fetch(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 't'::regclass AND i.indisvalid ORDER BY 1"
        )
        assert [r["relname"] for r in valid] == ["t_a", "t_b"]
    finally:
        await conn.close()


def test_a_no_transaction_statement_must_end_with_a_semicolon(tmp_path: Path):
    (tmp_path / "0001_index.sql").write_text(
        "-- migrate: no transaction\nCREATE INDEX CONCURRENTLY i ON t (a)\n"
    )
    (migration,) = discover(tmp_path)
    with pytest.raises(MigrationError, match="does not end with ';'"):
        migration.statements()
