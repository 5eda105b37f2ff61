"""Give the C heap's free pages back to the OS once a burst is over (glibc's ``malloc_trim``).

Measured with ``tracks actor run tracks.examples.receipts`` (four tracks, default concurrency
and look-ahead), two bursts of 10,000 runs published while it ran, 40 s idle after each: RSS
went from 49 MiB to 118 MiB with 30 receipts per run (69 MiB with 3) and stayed there. Not a
leak: the second burst added under 2 MiB, and the live Python objects after a burst were under
2 MiB more than before it (``sys._debugmallocstats``, ``gc``, ``/proc/self/smaps``). What stays
is the peak of the in-flight set — up to ``concurrency`` decoded steps plus ``fetch_batch``
fetched messages per track — kept by the allocators:

- about 24 MiB (4 MiB with 3 receipts) are free chunks in glibc's heap: bodies, JSON
  documents of ledger batches, socket reads, every buffer over 512 bytes. glibc gives heap
  memory back on its own only from the top of the heap, and one chunk still in use above the
  free ones keeps them; ``malloc_trim(0)`` hands every free page back (``madvise``): RSS 117 ->
  93 MiB, in 7-8 ms;
- the rest is CPython's small-object arenas (1 MiB each: 19 before, 61 after a burst), mostly
  empty pools: an arena is given back only when its last object is gone, and a few objects
  made during the burst that live on (new pool connections, caches) keep most of them. The
  next burst reuses them, so this part is bounded by the in-flight limits, not by the number
  or length of bursts.

:class:`IdleTrim` calls ``malloc_trim(0)`` once after each burst, when the process was idle
for a whole check interval: never on the hot path, and not again while it stays idle. It relies
on glibc (``malloc_trim`` is a GNU extension): elsewhere (musl, macOS) :func:`trimmer` is
``None`` and :meth:`IdleTrim.run` returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable

__all__ = ["IdleTrim", "rss_bytes", "trimmer"]

log = logging.getLogger(__name__)


def trimmer() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` (returns 1 when memory was released), or ``None`` without glibc."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (AttributeError, OSError, ValueError):  # not glibc, or no such confstr name here
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def malloc_trim() -> int:
        return int(trim(0))

    return malloc_trim


def rss_bytes() -> int | None:
    """This process's resident set size from ``/proc`` (``None`` where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class IdleTrim:
    """Trim once when the process goes idle after work.

    Every ``interval_s`` it compares the process's CPU time with the wall clock: an interval with
    less than ``idle_share`` of a core counts as idle, a busier one adds its CPU time to the work
    done since the last trim. The first idle interval after at least ``min_work_s`` of such work
    trims. Idle intervals add nothing, so an idle process is trimmed once, not every interval.
    """

    def __init__(
        self,
        interval_s: float = 10.0,
        *,
        idle_share: float = 0.05,
        min_work_s: float = 1.0,
        trim: Callable[[], int] | None = None,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_s = interval_s
        self._idle_share = idle_share
        self._min_work_s = min_work_s
        self._trim = trim if trim is not None else trimmer()
        self._cpu = cpu
        self._clock = clock
        self._last_cpu = cpu()
        self._last_at = clock()
        self._work_s = 0.0
        self.trims = 0
        """How many times it trimmed."""
        self.released = 0
        """Bytes of RSS the trims gave back, as far as ``/proc`` tells."""

    @property
    def available(self) -> bool:
        return self._trim is not None

    def check(self) -> bool:
        """One look (called every ``interval_s``): trim if this interval was idle after work."""
        cpu, at = self._cpu(), self._clock()
        used, elapsed = cpu - self._last_cpu, at - self._last_at
        self._last_cpu, self._last_at = cpu, at
        if elapsed <= 0:
            return False
        if used >= self._idle_share * elapsed:
            self._work_s += used
            return False
        if self._work_s < self._min_work_s or self._trim is None:
            return False
        self._work_s = 0.0
        before = rss_bytes()
        began = time.perf_counter()
        self._trim()
        took_ms = (time.perf_counter() - began) * 1000
        after = rss_bytes()
        self.trims += 1
        if before is not None and after is not None:
            self.released += max(0, before - after)
            log.info(
                "idle after a burst: %.1f MiB of free heap back to the OS (RSS %.1f -> %.1f MiB, %.1f ms)",
                (before - after) / 2**20,
                before / 2**20,
                after / 2**20,
                took_ms,
            )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``interval_s`` until ``stop`` is set; returns at once without glibc."""
        if self._trim is None:
            return
        self._last_cpu, self._last_at = self._cpu(), self._clock()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            if not stop.is_set():
                self.check()
