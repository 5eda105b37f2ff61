"""Small workflows several tests build."""

from __future__ import annotations

from actors import TrackContext, Workflow

__all__ = ["passthrough_pair"]


def passthrough_pair(name: str, up: str, down: str) -> Workflow:
    """``up`` → ``down``, each returning its input unchanged."""
    wf = Workflow(name)

    @wf.track(up)
    async def first(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    @wf.track(down, after=[up])
    async def second(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    return wf
