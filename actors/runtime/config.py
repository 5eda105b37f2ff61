"""A track's effective configuration: its options over the settings, checked as a whole.

Values that are each valid can still contradict each other (a retry delay longer than the
stream keeps messages, a concurrency the consumer's ack-pending limit can never reach);
:func:`resolve` refuses those at start with one message per problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.errors import WorkflowError
from actors.retry import RetryPolicy
from actors.track import Track
from foundation.settings import Settings

__all__ = ["TrackConfig", "resolve"]


@dataclass(frozen=True)
class TrackConfig:
    max_deliver: int
    ack_wait_s: float
    max_ack_pending: int
    concurrency: int
    fetch_batch: int
    fetch_timeout_s: float
    time_limit_s: float
    retry: RetryPolicy
    breaker_threshold: int
    breaker_cooldown_s: float
    priority_aging_s: float

    @property
    def heartbeat_s(self) -> float:
        """How often held messages are marked in progress: well inside ack_wait."""
        return self.ack_wait_s / 3


def resolve(track: Track, settings: Settings) -> TrackConfig:
    o, s = track.options, settings

    def pick(option: float | int | None, default: float | int) -> float:
        return default if option is None else option

    max_deliver = int(pick(o.max_deliver, s.max_deliver))
    base_s, cap_s = pick(o.retry_base_s, s.retry_base_s), pick(o.retry_cap_s, s.retry_cap_s)
    values = dict(
        max_deliver=max_deliver,
        ack_wait_s=pick(o.ack_wait_s, s.ack_wait_s),
        max_ack_pending=s.max_ack_pending,
        concurrency=int(pick(o.concurrency, s.concurrency)),
        fetch_batch=int(pick(o.fetch_batch, s.fetch_batch)),
        fetch_timeout_s=s.fetch_timeout_s,
        time_limit_s=pick(o.time_limit_s, s.time_limit_s),
        breaker_threshold=int(pick(o.breaker_threshold, s.breaker_threshold)),
        breaker_cooldown_s=pick(o.breaker_cooldown_s, s.breaker_cooldown_s),
        priority_aging_s=s.priority_aging_s,
    )
    problems = _problems(values, base_s, cap_s, s.stream_max_age_s)
    if problems:
        raise WorkflowError(f"track {track.name}: " + "; ".join(problems))
    return TrackConfig(**values, retry=RetryPolicy(max_deliver=max_deliver, base_s=base_s, cap_s=cap_s))  # type: ignore[arg-type]


def _problems(v: dict[str, float], base_s: float, cap_s: float, stream_max_age_s: float) -> list[str]:
    found = []
    if v["ack_wait_s"] < 1:
        found.append(
            f"ack_wait_s={v['ack_wait_s']:g} is under 1s: heartbeats every "
            f"{v['ack_wait_s'] / 3:.2f}s would flood NATS"
        )
    if v["concurrency"] > v["max_ack_pending"]:
        found.append(
            f"concurrency={v['concurrency']:g} exceeds max_ack_pending={v['max_ack_pending']:g}: "
            "the consumer would never deliver that many at once"
        )
    if cap_s < base_s:
        found.append(f"retry_cap_s={cap_s:g} is below retry_base_s={base_s:g}")
    deliveries = int(v["max_deliver"])
    worst = sum(min(cap_s, base_s * 2**i) for i in range(deliveries - 1)) + deliveries * v["time_limit_s"]
    if worst >= stream_max_age_s:
        found.append(
            f"all retries could take {worst:.0f}s, longer than the stream keeps messages "
            f"(stream_max_age_s={stream_max_age_s:g})"
        )
    return found
