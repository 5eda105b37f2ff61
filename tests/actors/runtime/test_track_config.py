"""A track's settings are checked as a whole when the runtime is built, before it connects."""

from __future__ import annotations

import pytest

from actors import Runtime, TrackOptions, Workflow, WorkflowError
from actors.runtime.config import resolve


def _track(**options: float):
    wf = Workflow("cfg")

    @wf.track("t", options=TrackOptions(**options))
    async def noop(ctx, payload: dict) -> dict:
        return payload

    return wf["t"]


def test_track_options_override_settings(settings):
    config = resolve(_track(max_deliver=3, time_limit_s=2, retry_base_s=0.5, retry_cap_s=4), settings)
    assert (config.max_deliver, config.time_limit_s) == (3, 2)
    assert (config.retry.base_s, config.retry.cap_s, config.retry.max_deliver) == (0.5, 4, 3)
    assert config.ack_wait_s == settings.ack_wait_s


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ack_wait_s": 0.5}, "ack_wait_s=0.5 is under 1s"),
        ({"concurrency": 5000}, "exceeds max_ack_pending"),
        ({"retry_base_s": 10, "retry_cap_s": 5}, "retry_cap_s=5 is below retry_base_s=10"),
        ({"time_limit_s": 10**6}, "longer than the stream keeps messages"),
    ],
)
def test_contradictions_are_refused_with_the_reason(settings, options, message):
    with pytest.raises(WorkflowError, match=message):
        Runtime([_track(**options)], settings=settings)


def test_invalid_single_options_are_refused():
    with pytest.raises(WorkflowError, match="max_deliver must be > 0"):
        TrackOptions(max_deliver=0)
    with pytest.raises(WorkflowError, match="breaker_threshold must be >= 0"):
        TrackOptions(breaker_threshold=-1)
