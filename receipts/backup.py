"""A consistent backup of the database (the product's tables and the runtime's), verified.

``pg_dump --format=custom`` takes one snapshot of every table (compressed); the dump is then
restored into a scratch database, its tables counted against the dump's table of contents, and
the scratch database dropped. Only then does the file get its final name; the newest ``keep``
backups are kept. The binaries: ``TRACKS_RECEIPTS_PG_BIN_DIR``, else the embedded PostgreSQL's
(the ``pgserver`` wheel), else the PATH.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

__all__ = ["Backup", "BackupError", "create_backup", "pg_binary"]


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Backup:
    path: Path
    size_bytes: int
    tables: int
    removed: list[str]


def pg_binary(name: str, configured: Path | None) -> str:
    candidates = []
    if configured is not None:
        candidates.append(configured / name)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"no {name} binary: set TRACKS_RECEIPTS_PG_BIN_DIR or install tracks[embedded]")
    return found


def _split(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password (for argv), and the password as PGPASSWORD."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
        host = parts.hostname or ""
        netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts), env


async def _run(*argv: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise BackupError(
            f"{Path(argv[0]).name} failed ({proc.returncode}): {err.decode(errors='replace')[-300:]}"
        )
    return out.decode(errors="replace")


async def create_backup(
    pool: asyncpg.Pool, database_url: str, folder: Path, *, keep: int, bin_dir: Path | None = None
) -> Backup:
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    url, env = _split(database_url)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    partial = folder / f".backup-{stamp}.dump.part"
    await _run(
        pg_binary("pg_dump", bin_dir),
        "--format=custom",
        "--compress=6",
        f"--file={partial}",
        f"--dbname={url}",
        env=env,
    )
    listing = await _run(pg_binary("pg_restore", bin_dir), "--list", str(partial), env=env)
    dumped = {line.split()[-2] for line in listing.splitlines() if " TABLE DATA " in line}
    tables = await _verify(pool, url, env, partial, dumped, bin_dir)
    final = folder / f"backup-{stamp}.dump"
    removed = await asyncio.to_thread(_keep_newest, partial, final, keep)
    return Backup(final, final.stat().st_size, tables, removed)


def _keep_newest(partial: Path, final: Path, keep: int) -> list[str]:
    """Give the verified dump its final name, then remove all but the newest ``keep`` backups."""
    partial.rename(final)
    backups = sorted(final.parent.glob("backup-*.dump"))
    removed = []
    for old in backups[: max(0, len(backups) - keep)]:
        old.unlink()
        removed.append(old.name)
    return removed


async def _verify(
    pool: asyncpg.Pool, url: str, env: dict[str, str], dump: Path, dumped: set[str], bin_dir: Path | None
) -> int:
    scratch = f"tracks_backup_check_{secrets.token_hex(4)}"
    await pool.execute(f'CREATE DATABASE "{scratch}"')
    try:
        parts = urlsplit(url)
        scratch_url = urlunsplit(parts._replace(path=f"/{scratch}"))
        await _run(
            pg_binary("pg_restore", bin_dir),
            "--no-owner",
            "--exit-on-error",
            f"--dbname={scratch_url}",
            str(dump),
            env=env,
        )
        conn = await asyncpg.connect(scratch_url, password=env.get("PGPASSWORD"))
        try:
            restored = {
                r["tablename"]
                for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            missing = dumped - restored
            if missing:
                raise BackupError(f"the restored backup lacks tables: {', '.join(sorted(missing))}")
            for needed in ("receipts", "bookkeeping_entries", "processing_logs", "job_schedules"):
                if needed not in restored:
                    raise BackupError(f"the restored backup has no {needed} table")
            return len(restored)
        finally:
            await conn.close()
    finally:
        await pool.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
