"""Servers of a test's own, for tests that stop, kill or restart them (the session's are shared)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg

from foundation.db import migrate
from tracks.embedded import NatsCluster, NatsServer, PostgresServer

__all__ = ["own_cluster", "own_nats", "own_postgres"]


@contextmanager
def own_nats(root: Path) -> Iterator[NatsServer]:
    """A nats-server with JetStream on a free port, its store under ``root``; stopped after."""
    server = NatsServer(root / "nats")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def own_cluster(root: Path, n: int = 3) -> Iterator[NatsCluster]:
    """A JetStream cluster of ``n`` nats-servers on free loopback ports, ready (a meta leader
    elected), its stores under ``root/cluster``; every node stopped after."""
    cluster = NatsCluster(root / "cluster", n)
    try:
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()


@asynccontextmanager
async def own_postgres(root: Path) -> AsyncIterator[PostgresServer]:
    """A migrated PostgreSQL on a free port, its cluster under ``root``; stopped and deleted after."""
    server = PostgresServer(root / "postgres", fast=True)
    try:
        server.start()
        conn = await asyncpg.connect(server.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield server
    finally:
        server.delete_data()
