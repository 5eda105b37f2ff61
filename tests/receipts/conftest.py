"""The receipts product on the suite's real servers: its own database (so a backup is small and
the counts are the sample data's), its own home directory, all its workflows in one runtime."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import receipts
from actors import Runtime, TracksClient, Workflow
from foundation.db import create_pool, migrate
from foundation.settings import Settings
from tests.conftest import Servers


@dataclass
class Product:
    runtime: Runtime
    pool: asyncpg.Pool
    client: TracksClient
    home: Path
    database_url: str

    async def run(self, workflow: Workflow, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.client.run(workflow, payload or {}, timeout=60)
        assert isinstance(result, dict)
        return result


@pytest.fixture(scope="package")
def receipts_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("receipts")
    before = os.environ.get("TRACKS_RECEIPTS_HOME")
    os.environ["TRACKS_RECEIPTS_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("TRACKS_RECEIPTS_HOME", None)
    else:
        os.environ["TRACKS_RECEIPTS_HOME"] = before


@pytest.fixture(scope="package")
async def product(servers: Servers, settings: Settings, receipts_home: Path) -> AsyncIterator[Product]:
    name = f"receipts_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(servers.database_url)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = servers.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        tracks = [t for wf in vars(receipts).values() if isinstance(wf, Workflow) for t in wf]
        async with Runtime(tracks, settings=settings.model_copy(update={"database_url": dsn})) as runtime:
            assert runtime.nc is not None
            pool = await create_pool(dsn, max_size=4)
            try:
                yield Product(
                    runtime, pool, TracksClient(runtime.nc, payloads=runtime.payloads), receipts_home, dsn
                )
            finally:
                await pool.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
