"""A run of every shape, for the one-trace-per-run tests (``tracks run tests.support.apps.traced_app:<wf>``).

Two roots ``a`` and ``b`` fan in to ``c`` (phase ``intake``); ``d`` waits at the manual gate of phase
``review``, then ``e``, which fails for good while ``broken`` holds (``tracks resume`` continues it).
Track names are prefixed per test: :func:`build` sets ``current``.
"""

from __future__ import annotations

from actors import PermanentError, Phase, TrackContext, TrackOptions, Workflow

__all__ = ["broken", "build", "current"]

current: Workflow | None = None
broken = {"e": True}


def build(prefix: str) -> Workflow:
    global current
    a, b, c, d, e = (f"{prefix}-{x}" for x in "abcde")
    wf = Workflow(
        f"{prefix}-traced", phases=[Phase("intake", (a, b, c)), Phase("review", (d, e), manual=True)]
    )
    quick = TrackOptions(retry_base_s=0.05, retry_cap_s=0.1)

    async def passthrough(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return {"n": 1}

    async def fragile(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        if broken["e"]:
            raise PermanentError("e is broken until someone fixes it")
        return {"n": 5}

    wf.track(a, options=quick)(passthrough)
    wf.track(b, options=quick)(passthrough)
    wf.track(c, after=[a, b], options=quick)(passthrough)
    wf.track(d, after=[c], options=quick)(passthrough)
    wf.track(e, after=[d], options=quick)(fragile)
    wf.validate()
    current = wf
    broken["e"] = True
    return wf
