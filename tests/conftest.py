"""Real servers for the whole session: a nats-server with JetStream and a PostgreSQL.

Started here on free ports in temp dirs and torn down after, unless ``TRACKS_NATS_URL`` /
``TRACKS_DATABASE_URL`` point at servers to use instead. Never the machine's own services.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from foundation.db import create_pool, migrate
from foundation.settings import Settings, load_settings
from subjects import dlq_stream, ensure_streams, tracks_stream
from tracks.embedded import NatsServer, PostgresServer


@dataclass
class Servers:
    nats_url: str
    database_url: str
    nats: NatsServer | None
    postgres: PostgresServer | None
    root: Path


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    root = Path(tempfile.mkdtemp(prefix="tracks-test-"))
    nats_server: NatsServer | None = None
    postgres: PostgresServer | None = None
    nats_url = os.environ.get("TRACKS_NATS_URL")
    database_url = os.environ.get("TRACKS_DATABASE_URL")
    with ExitStack() as cleanup:  # each step runs, last first, even when one before it raised
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        if not nats_url:
            nats_server = NatsServer(root / "nats")
            cleanup.callback(nats_server.stop)
            nats_server.start()
            nats_url = nats_server.url
        if not database_url:
            postgres = PostgresServer(root / "postgres", fast=True)
            cleanup.callback(postgres.delete_data)
            postgres.start()
            database_url = postgres.url
        yield Servers(nats_url, database_url, nats_server, postgres, root)


@pytest.fixture(scope="session")
def settings(servers: Servers) -> Settings:
    return load_settings(nats_url=servers.nats_url, database_url=servers.database_url, data_dir=servers.root)


@pytest.fixture(scope="session")
async def migrated(servers: Servers) -> None:
    conn = await asyncpg.connect(servers.database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture
async def pool(servers: Servers, migrated: None) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(servers.database_url, max_size=4)
    yield p
    await p.close()


@pytest.fixture
async def nc(servers: Servers, settings: Settings) -> AsyncIterator[NATS]:
    from foundation.connections import connect_nats

    client = await connect_nats(settings, servers.nats_url, name="tests")
    yield client
    await client.drain()


@pytest.fixture
async def js(nc: NATS, settings: Settings) -> JetStreamContext:
    jsc = nc.jetstream()
    await ensure_streams(
        jsc,
        tracks_stream(max_age_s=settings.stream_max_age_s, duplicate_window_s=settings.duplicate_window_s),
        dlq_stream(max_age_s=settings.dlq_max_age_s),
    )
    return jsc


@pytest.fixture
async def fresh_db(servers: Servers) -> AsyncIterator[str]:
    """A new, empty database on the suite's PostgreSQL; its DSN."""
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(servers.database_url)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = servers.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield dsn
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
def unique() -> str:
    """A suffix that keeps one test's tracks, schedules and subjects apart from another's."""
    return uuid.uuid4().hex[:8]
