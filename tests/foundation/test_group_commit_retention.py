"""Group commit keeps nothing of a written batch while it waits for the next one."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

from foundation.group_commit import GroupCommit


class _Row:
    """A stand-in for a ledger row (a claim carries the step's payload)."""

    def __init__(self, n: int) -> None:
        self.payload = {"n": n, "blob": "x" * 1000}


async def test_a_written_batch_is_let_go_before_the_next_one_arrives() -> None:
    async def write(items: Sequence[_Row]) -> list[int]:
        await asyncio.sleep(0)
        return [len(item.payload) for item in items]

    commit: GroupCommit[_Row, int] = GroupCommit(write, name="retention", parallel=2)
    commit.start()
    rows = [_Row(i) for i in range(300)]
    alive = [weakref.ref(r) for r in rows]
    assert await asyncio.gather(*(commit.enqueue(r) for r in rows)) == [2] * 300
    del rows
    await asyncio.sleep(0.01)  # both writers are back at their wait for the next batch
    kept = sum(r() is not None for r in alive)
    assert kept == 0, f"{kept} rows of written batches are still referenced while the writers idle"
    assert await commit.close() == 0
