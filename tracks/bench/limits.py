"""Flow control's cost and accuracy (``tracks bench --limits``), in the same run as the chain.

Three runs of the linear chain on the full runtime, beside the unlimited one of the same bench:
``max_running`` on every stage (a limit that never binds: what taking and giving back a slot
costs), a per-key limit on every stage (32 keys, 8 running each), and a rate limit on the first
stage (how close the achieved rate comes to the limit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from actors import TrackOptions
from tracks.bench.driver import Measurement
from tracks.bench.workflows import bench_key

__all__ = ["RATE_PER_S", "measure_limits"]

RATE_PER_S = 100
"""The first stage's ``rate_limit`` in the accuracy run."""

Measure = Callable[[str, TrackOptions, int, bool], Awaitable[Measurement]]


async def measure_limits(measure: Measure, n: int, unlimited: Measurement) -> dict[str, Any]:
    """``measure(kind, options, workflows, first_only)`` runs the chain with ``options``."""

    def cost(m: Measurement) -> dict[str, Any]:
        return {
            **m.as_dict(),
            "cost_pct": round(100 * (1 - m.per_second / unlimited.per_second), 1)
            if unlimited.per_second
            else None,
        }

    running = await measure("lmax", TrackOptions(max_running=100_000), n, False)
    per_key = await measure("lkey", TrackOptions(key=bench_key, max_running_per_key=8), n, False)
    rate_n = max(1, min(n, RATE_PER_S * 5))
    rated = await measure("lrate", TrackOptions(rate_limit=f"{RATE_PER_S}/s"), rate_n, True)
    return {
        "max_running": cost(running),
        "per_key": cost(per_key),
        "rate_limit": {
            **rated.as_dict(),
            "limit_per_s": RATE_PER_S,
            "achieved_per_s": round(rated.per_second, 1),
            "accuracy_pct": round(100 * rated.per_second / RATE_PER_S, 1),
        },
    }
