"""A workflow that uses every kind of wiring a deployment's permissions must allow: a push
track, a fan-in, and a manual phase the operator releases through the request API.

``g-scan`` (push) fans out to ``g-left`` and ``g-right``, which fan in to ``g-book`` in the
manual phase ``review``. ``g-scan`` refuses a payload with ``"fail": true`` (a dead letter).
"""

from __future__ import annotations

from actors import PermanentError, Phase, TrackContext, TrackOptions, Workflow

__all__ = ["guarded"]

guarded = Workflow(
    "guarded",
    phases=[Phase("intake", ("g-scan", "g-left", "g-right")), Phase("review", ("g-book",), manual=True)],
)


async def _pass(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
    return {**payload, ctx.track: True}


@guarded.track("g-scan", options=TrackOptions(delivery="push"))
async def _scan(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
    if payload.get("fail"):
        raise PermanentError("this scan is refused")
    return await _pass(ctx, payload)


guarded.track("g-left", after=["g-scan"])(_pass)
guarded.track("g-right", after=["g-scan"])(_pass)
guarded.track("g-book", after=["g-left", "g-right"])(_pass)
