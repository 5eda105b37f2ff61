"""The ``stream_space`` alert: a stream the project created is nearly full.

Every stream is bounded in bytes with ``discard=new`` (:mod:`subjects.streams`): once full, a
publish to it fails instead of old, perhaps unprocessed, events being dropped. That is loud,
but it stops the work, so this alert fires first: when ``TRACKS``, ``DLQ`` or the payload
object store (``OBJ_TRACKS_PAYLOADS``) holds at least ``TRACKS_ALERT_STREAM_FULL`` (0.8) of its
``max_bytes``. Details: ``bytes``, ``maxBytes``, ``used`` (0..1), ``messages``, ``threshold``.
Checked with the other alerts (:class:`actors.failures.alerts.AlertMonitor`, ``tracks alerts check``).
"""

from __future__ import annotations

from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from subjects import DLQ_STREAM, STREAM
from subjects.streams import PAYLOADS_BUCKET

__all__ = ["STREAM_SPACE", "WATCHED", "SpaceReading", "stream_space"]

STREAM_SPACE = "stream_space"
WATCHED = (STREAM, DLQ_STREAM, f"OBJ_{PAYLOADS_BUCKET}")
"""The streams the project creates: ``TRACKS``, ``DLQ`` and the payload bucket's."""

_KNOB = {STREAM: "TRACKS_STREAM_MAX_BYTES", DLQ_STREAM: "TRACKS_DLQ_MAX_BYTES"}


class SpaceReading:
    """One stream at or over the threshold."""

    def __init__(self, stream: str, used_bytes: int, max_bytes: int, messages: int, threshold: float) -> None:
        self.stream = stream
        self.used_bytes = used_bytes
        self.max_bytes = max_bytes
        self.messages = messages
        self.threshold = threshold

    @property
    def message(self) -> str:
        knob = _KNOB.get(self.stream, "TRACKS_PAYLOAD_MAX_BYTES")
        return (
            f"stream {self.stream} is {self.used_bytes / self.max_bytes:.0%} full ({self.used_bytes} of "
            f"{self.max_bytes} bytes, alert at {self.threshold:.0%}); when full its publishes fail: "
            f"raise {knob} or shorten its max age (README: Sizing)"
        )

    @property
    def details(self) -> dict[str, object]:
        return {
            "bytes": self.used_bytes,
            "maxBytes": self.max_bytes,
            "used": round(self.used_bytes / self.max_bytes, 4),
            "messages": self.messages,
            "threshold": self.threshold,
        }


async def stream_space(
    js: JetStreamContext, threshold: float, streams: Sequence[str] = WATCHED
) -> list[SpaceReading]:
    """The ``streams`` holding at least ``threshold`` of their ``max_bytes`` (missing or unbounded
    ones are skipped)."""
    full = []
    for name in streams:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            continue
        limit = info.config.max_bytes or -1
        used = int(info.state.bytes)
        if limit > 0 and used >= threshold * limit:
            full.append(SpaceReading(name, used, limit, int(info.state.messages), threshold))
    return full
