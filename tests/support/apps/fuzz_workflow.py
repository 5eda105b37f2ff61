"""The small workflow the hostile-input fuzz test runs: ``<prefix>-up`` → ``<prefix>-down``.

``up`` takes a strict pydantic model (no coercion, no extra keys), so a plain trigger is good
only when its body is exactly ``{"n": <int>[, "note": <str>]}``; ``down`` runs after ``up``
with ``up``'s output. Both handlers note the correlation IDs they ran for (``FuzzPair.ran``):
a forged completion event must never run ``down``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from actors import TrackContext, Workflow

__all__ = ["FuzzPair", "Order", "fuzz_pair"]


class Order(BaseModel):
    """``up``'s input and output, and ``down``'s input: strict, no extra keys."""

    model_config = ConfigDict(strict=True, extra="forbid")

    n: int
    note: str = ""


@dataclass
class FuzzPair:
    workflow: Workflow
    up: str
    down: str
    ran: dict[str, Counter[str]] = field(default_factory=dict)
    """Handler invocations by track, then correlation ID."""

    @property
    def name(self) -> str:
        return self.workflow.name


def fuzz_pair(prefix: str) -> FuzzPair:
    up, down = f"{prefix}-up", f"{prefix}-down"
    pair = FuzzPair(Workflow(f"fuzz-{prefix}"), up, down, {up: Counter(), down: Counter()})

    @pair.workflow.track(up)
    async def take(ctx: TrackContext, order: Order) -> Order:
        pair.ran[up][ctx.correlation_id] += 1
        return order

    @pair.workflow.track(down, after=[up])
    async def follow(ctx: TrackContext, order: Order) -> Order:
        pair.ran[down][ctx.correlation_id] += 1
        return Order(n=order.n + 1)

    return pair
