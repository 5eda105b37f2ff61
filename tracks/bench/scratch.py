"""A PostgreSQL for one measurement: the one named, or a throwaway one deleted afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["scratch_postgres"]


@contextmanager
def scratch_postgres(prefix: str, url: str | None = None) -> Iterator[str]:
    """``url`` when given; else a PostgreSQL of its own (fsync off) in a temporary directory named
    ``prefix...``, stopped and deleted when the block ends. Yields the DSN."""
    if url is not None:
        yield url
        return
    from tracks.embedded import PostgresServer

    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = PostgresServer(root / "postgres", fast=True)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        server.delete_data()
        shutil.rmtree(root, ignore_errors=True)
