"""Load driver shared by every contender: publish N triggers, observe N final events.

Each trigger carries its send time; an observer subscribed (core NATS) to the final
subject records end-to-end latency. Throughput = N / (last final event - first publish).
``rate`` paces the triggers (open loop) for latency figures; ``None`` is a burst.
CPU and peak RSS are sampled for this process and for the actor processes named by ``pids``
(the bench's one-process-per-track mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil  # type: ignore[import-untyped]
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

__all__ = ["Measurement", "drive"]


@dataclass(frozen=True)
class Measurement:
    n: int
    completed: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_workflow: float
    """This process's CPU time per completed workflow: steadier than wall throughput on a shared
    machine (runtime, driver and observer all run in this process, for every contender alike);
    with actor processes, their CPU is added."""
    rss_mb: float = 0.0
    """Peak resident memory of the process running the actors, sampled every 100 ms: this one
    (driver and observer included), or the largest actor process when each track has its own."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def drive(
    nc: NATS,
    *,
    n: int,
    trigger: Callable[[int, bytes], tuple[str, bytes, dict[str, str]]],
    final_subject: str,
    rate: float | None = None,
    window: int = 1000,
    timeout_s: float = 300.0,
    final_payload: Callable[[bytes], dict[str, Any]] = json.loads,
    pids: Sequence[int] = (),
) -> Measurement:
    js = nc.jetstream()
    latencies: list[float] = []
    done = asyncio.Event()

    async def observe(msg: Msg) -> None:
        t0 = final_payload(msg.data)["t0"]
        latencies.append(time.time() - t0)
        if len(latencies) >= n:
            done.set()

    sub = await nc.subscribe(final_subject, cb=observe)
    slots = asyncio.Semaphore(window)
    procs = [psutil.Process(pid) for pid in pids] or [psutil.Process()]
    start = time.monotonic()
    cpu_start = time.process_time() + _cpu(procs, pids)
    peak = [0]
    sampler = asyncio.create_task(_sample_rss(procs, peak))

    async def publish(i: int) -> None:
        body = json.dumps({"t0": time.time(), "i": i}).encode()
        subject, data, hdrs = trigger(i, body)
        try:
            await js.publish(subject, data, headers=hdrs, timeout=30)
        finally:
            slots.release()

    tasks = []
    for i in range(n):
        if rate:
            lag = start + i / rate - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
        await slots.acquire()
        tasks.append(asyncio.create_task(publish(i)))
    await asyncio.gather(*tasks)
    with contextlib.suppress(TimeoutError):  # report what completed by then
        await asyncio.wait_for(done.wait(), timeout_s)
    elapsed = time.monotonic() - start
    cpu = time.process_time() + _cpu(procs, pids) - cpu_start
    sampler.cancel()
    peak[0] = max(peak[0], _rss(procs))
    await sub.unsubscribe()
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]
    return Measurement(
        n=n,
        completed=len(latencies),
        seconds=round(elapsed, 3),
        per_second=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(ms), 2),
        p99_ms=round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
        max_ms=round(ms[-1], 2),
        cpu_ms_per_workflow=round(1000 * cpu / max(1, len(latencies)), 3),
        rss_mb=round(peak[0] / 2**20, 1),
    )


def _cpu(procs: list[psutil.Process], pids: Sequence[int]) -> float:
    """User and system CPU seconds of the actor processes (none beyond this one: already counted)."""
    if not pids:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


def _rss(procs: list[psutil.Process]) -> int:
    """The largest resident set among the processes, in bytes."""
    sizes = [0]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            sizes.append(proc.memory_info().rss)
    return max(sizes)


async def _sample_rss(procs: list[psutil.Process], peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], _rss(procs))
        await asyncio.sleep(0.1)
