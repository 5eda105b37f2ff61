"""Where a paced run's time goes: the waits of each step, read from this process's histograms.

A step of the runtime waits, one after the other, for its delivery (and a free slot), for its
claim's group commit, for its outcome's group commit and for its event's PubAck (which the next
step does not wait for: it is delivered once stored). The runtime records each wait in a
histogram when metrics are on (``tracks_start_lag_seconds``, ``tracks_commit_wait_seconds``,
``tracks_puback_wait_seconds``); the bench turns them on in-process for its paced runs and
reports p50/p99 of each over one scenario (the difference of two readings).
"""

from __future__ import annotations

from foundation import metrics
from foundation.group_commit import COMMIT_WAIT
from foundation.jetstream.publisher import PUBACK_WAIT

__all__ = ["Reading", "read", "waits"]

Reading = dict[str, dict[tuple[str, ...], dict[float, float]]]

# histogram, label values (None: all summed) -> the name printed
_WAITS: tuple[tuple[str, str | None, str], ...] = (
    ("tracks_start_lag_seconds", None, "delivery"),
    (COMMIT_WAIT, "ledger-claims", "claim"),
    (COMMIT_WAIT, "ledger-writes", "outcome"),
    (COMMIT_WAIT, "run-completion", "run check"),
    (PUBACK_WAIT, None, "PubAck"),
)


def read() -> Reading:
    """The cumulative buckets of every wait histogram now (empty while metrics are off)."""
    return {name: metrics.histogram_buckets(name) for name in {h for h, _, _ in _WAITS}}


def waits(before: Reading, after: Reading) -> dict[str, dict[str, float]]:
    """p50/p99 (ms) and count of each wait between two readings; waits never seen are left out."""
    out: dict[str, dict[str, float]] = {}
    for name, label, shown in _WAITS:
        window: dict[float, float] = {}
        for labels, buckets in after.get(name, {}).items():
            if label is not None and labels != (label,):
                continue
            then = before.get(name, {}).get(labels, {})
            for le, n in buckets.items():
                window[le] = window.get(le, 0.0) + max(0.0, n - then.get(le, 0.0))
        p50, p99 = metrics.quantile(0.5, window), metrics.quantile(0.99, window)
        if p50 is None or p99 is None:
            continue
        out[shown] = {
            "p50_ms": round(p50 * 1000, 2),
            "p99_ms": round(p99 * 1000, 2),
            "n": int(window.get(float("inf"), 0.0)),
        }
    return out
