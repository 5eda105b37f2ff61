"""Serve higher-priority messages first among those fetched, without starving the rest.

The worker fetches a little ahead of its free slots into a :class:`PriorityBuffer` and
starts the most urgent message whenever a slot frees. A message's level is its
``Tracks-Priority`` header (high, normal, low; normal when absent or unknown); every
``aging_s`` it waits lifts it one level, so a steady stream of high-priority work delays
low-priority work but never blocks it forever.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from subjects.priority import PRIORITY_HEADER, Priority

__all__ = ["LEVELS", "PriorityBuffer", "carried", "level_of"]

LEVELS = tuple(p.value for p in sorted(Priority, key=lambda p: p.rank))
"""The wire's priority levels (``subjects.priority``), most urgent first."""
_INDEX = {name: i for i, name in enumerate(LEVELS)}
T = TypeVar("T")


def level_of(value: str | None) -> int:
    return _INDEX.get((value or "normal").strip().lower(), _INDEX["normal"])


def carried(hdrs: Mapping[str, str]) -> str | None:
    """The priority a step hands on to the steps its event starts: its own ``Tracks-Priority``,
    spelled canonically; ``None`` (nothing to carry) when absent, ``normal`` or unknown."""
    value = hdrs.get(PRIORITY_HEADER)
    if not value:
        return None
    index = _INDEX.get(value.strip().lower())
    return None if index is None or LEVELS[index] == Priority.NORMAL else LEVELS[index]


class PriorityBuffer(Generic[T]):
    def __init__(self, *, aging_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if aging_s <= 0:
            raise ValueError("aging_s must be > 0")
        self._aging_s = aging_s
        self._clock = clock
        self._queues: list[collections.deque[tuple[float, T]]] = [collections.deque() for _ in LEVELS]

    def add(self, item: T, level: int) -> None:
        self._queues[min(max(level, 0), len(LEVELS) - 1)].append((self._clock(), item))

    def take(self, n: int) -> list[T]:
        """Up to ``n`` items, most urgent first (level lowered by waiting time; ties: oldest)."""
        taken: list[T] = []
        while len(taken) < n:
            now, best = self._clock(), None
            for level, queue in enumerate(self._queues):
                if queue:
                    since = queue[0][0]
                    rank = (max(0, level - int((now - since) / self._aging_s)), since)
                    if best is None or rank < best[0]:
                        best = (rank, level)
            if best is None:
                break
            taken.append(self._queues[best[1]].popleft()[1])
        return taken

    def drain(self) -> list[T]:
        items = [item for queue in self._queues for _, item in queue]
        for queue in self._queues:
            queue.clear()
        return items

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues)
