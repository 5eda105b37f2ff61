"""Group commit: closing flushes what is queued, and gives up after a timeout when the database is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from foundation.group_commit import GroupCommit


async def test_close_writes_everything_queued() -> None:
    """With a healthy database, close() returns only once every queued item is written."""
    written: list[int] = []

    async def write(items: Sequence[int]) -> list[None]:
        await asyncio.sleep(0.01)
        written.extend(items)
        return [None] * len(items)

    commit: GroupCommit[int, None] = GroupCommit(write, name="healthy")
    commit.start()
    futures = [commit.enqueue(i) for i in range(50)]
    assert await commit.close() == 0
    assert sorted(written) == list(range(50))
    assert all(f.done() and not f.cancelled() for f in futures)


async def test_close_gives_up_after_its_timeout_while_the_database_is_away() -> None:
    """Transient failures are retried forever; close(timeout_s) stops anyway, reports what it
    dropped and cancels the callers still waiting, so a shutdown cannot hang on the database."""

    async def unavailable(items: Sequence[int]) -> list[None]:
        raise ConnectionRefusedError("database is down")

    commit: GroupCommit[int, None] = GroupCommit(unavailable, name="down")
    commit.start()
    futures = [commit.enqueue(i) for i in range(5)]
    await asyncio.sleep(0.1)  # let the writer fail and start retrying
    began = time.monotonic()
    dropped = await commit.close(timeout_s=0.3)
    assert time.monotonic() - began < 2
    assert dropped == 5
    assert all(f.cancelled() for f in futures)
    assert commit.failures > 0


async def test_parallel_writers_never_write_an_empty_batch() -> None:
    """Both writers wake for one item; the one that finds the queue emptied writes nothing (it was
    a database round trip per step with nothing in it: half of the claim batches at low load)."""
    batches: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[None]:
        batches.append(list(items))
        await asyncio.sleep(0.001)
        return [None] * len(items)

    commit: GroupCommit[int, None] = GroupCommit(write, name="parallel", parallel=2)
    commit.start()
    for i in range(20):  # one at a time, as at a low steady rate
        await commit.enqueue(i)
    await commit.close()
    assert [] not in batches
    assert sorted(i for b in batches for i in b) == list(range(20))
