"""What a handler is told about the step it runs: a typed object, not a dict."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrackContext"]


@dataclass
class TrackContext:
    track: str
    correlation_id: str
    attempt: int
    """1 on the first run of this step, counting retries and re-activations."""
    workflow: str | None
    user_id: str | None
    subject: str
    stream_seq: int
    deliveries: int
    """How often JetStream delivered this very message (1 = first delivery)."""
    headers: Mapping[str, str]
    upstream: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Payloads of the upstream tracks that activated this step, by track name."""
    trace_id: str | None = None
    _heartbeat: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    @functools.cached_property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that tags lines with the track and correlation ID (made on first use)."""
        return logging.LoggerAdapter(
            logging.getLogger(f"tracks.track.{self.track}"),
            {"correlation_id": self.correlation_id, "track": self.track},
        )

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and duplicate triggers: key your own side effects with it."""
        return f"{self.correlation_id}:{self.track}"

    async def heartbeat(self) -> None:
        """Tell JetStream the work goes on (the runtime also does this on its own)."""
        if self._heartbeat is not None:
            await self._heartbeat()
