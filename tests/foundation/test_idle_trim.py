"""The idle trim: once per burst, only when idle, a no-op without glibc, and it gives memory back."""

from __future__ import annotations

import asyncio

import pytest

from foundation import idle_trim
from foundation.idle_trim import IdleTrim, rss_bytes, trimmer


class _Process:
    """A fake CPU clock and wall clock, advanced by the test."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.now = 0.0
        self.trims = 0

    def trim(self) -> int:
        self.trims += 1
        return 1

    def interval(self, wall_s: float, cpu_s: float) -> None:
        self.now += wall_s
        self.cpu += cpu_s


def _trim(p: _Process) -> IdleTrim:
    return IdleTrim(10.0, trim=p.trim, cpu=lambda: p.cpu, clock=lambda: p.now)


def test_it_trims_once_when_the_process_goes_idle_after_a_burst() -> None:
    p = _Process()
    t = _trim(p)
    for _ in range(3):  # a burst: 3 busy intervals
        p.interval(10, 9.0)
        assert not t.check()
    p.interval(10, 0.05)
    assert t.check()
    for _ in range(20):  # staying idle does not trim again
        p.interval(10, 0.05)
        assert not t.check()
    assert p.trims == 1
    p.interval(10, 5.0)  # the next burst
    assert not t.check()
    p.interval(10, 0.0)
    assert t.check()
    assert p.trims == t.trims == 2


def test_it_never_trims_under_steady_load_nor_after_too_little_work() -> None:
    p = _Process()
    t = _trim(p)
    for _ in range(50):
        p.interval(10, 2.0)  # 20 % of a core: busy
        assert not t.check()
    p = _Process()
    t = _trim(p)
    p.interval(10, 0.6)  # a little work (over the idle share, under min_work_s)
    assert not t.check()
    for _ in range(5):
        p.interval(10, 0.01)
        assert not t.check()
    assert p.trims == 0


async def test_without_glibc_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle_trim, "trimmer", lambda: None)
    t = IdleTrim(0.01)
    assert not t.available
    await asyncio.wait_for(t.run(asyncio.Event()), 1)  # returns at once instead of looping


async def test_run_checks_every_interval_until_stopped() -> None:
    p = _Process()
    t = IdleTrim(0.01, trim=p.trim, cpu=lambda: p.cpu, clock=lambda: p.now)
    stop = asyncio.Event()
    task = asyncio.create_task(t.run(stop))
    await asyncio.sleep(0.02)  # running: what came before it (start-up) is not counted
    p.interval(10, 9.0)
    await asyncio.sleep(0.05)
    p.interval(10, 0.0)
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert p.trims == 1


@pytest.mark.skipif(trimmer() is None, reason="malloc_trim is glibc's")
def test_malloc_trim_gives_back_freed_heap_memory_that_glibc_keeps() -> None:
    """What the actor measured, in small: buffers over 512 bytes come from glibc's heap; freed
    under a chunk still in use they stay resident until malloc_trim hands their pages back."""
    trim = trimmer()
    assert trim is not None
    trim()
    buffers = [bytes(4000) + bytes([i % 256]) for i in range(16_000)]  # ~64 MiB in 4 KB chunks
    pin = bytes(4000) + b"pin"  # allocated last: above the others in the heap
    grown = rss_bytes()
    del buffers
    kept = rss_bytes()
    trim()
    after = rss_bytes()
    assert grown is not None and kept is not None and after is not None
    assert kept > after + 32 * 2**20, (grown, kept, after)  # kept by glibc, given back by the trim
    assert pin
