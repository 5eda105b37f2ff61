"""What a handler is told about the step it runs: a typed object, not a dict."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.errors import StepCancelled

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
    _cancel_reason: str | None = field(default=None, repr=False)
    _cancelled: bool = field(default=False, repr=False)
    _cancel_event: asyncio.Event | None = field(default=None, repr=False)

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

    # --- cancellation (``tracks cancel``): cooperative, the handler decides ---------------

    @property
    def cancelled(self) -> bool:
        """The run was cancelled while this step ran. Finish (the output is recorded, nothing
        downstream starts) or stop: ``raise_if_cancelled()``. Told by the runtime when it hears
        ``tracks.workflow.<wf>.cancelled.<cid>``: best effort (a step not told still starts
        nothing downstream, the ledger refuses it)."""
        return self._cancelled

    @property
    def cancel_reason(self) -> str | None:
        return self._cancel_reason

    def raise_if_cancelled(self) -> None:
        """Stop here if the run was cancelled: :class:`StepCancelled` (recorded, not retried)."""
        if self._cancelled:
            raise StepCancelled(
                f"run {self.correlation_id} was cancelled"
                + (f": {self._cancel_reason}" if self._cancel_reason else "")
            )

    async def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Wait until the run is cancelled (``True``) or ``timeout`` seconds pass (``False``):
        a handler that waits on something else can race this."""
        if self._cancel_event is None:
            self._cancel_event = asyncio.Event()
            if self._cancelled:
                self._cancel_event.set()
        try:
            async with asyncio.timeout(timeout):
                await self._cancel_event.wait()
        except TimeoutError:
            return False
        return True

    def mark_cancelled(self, reason: str | None = None) -> None:
        """Called by the runtime (not by handlers) when the step's run was cancelled."""
        self._cancelled, self._cancel_reason = True, reason
        if self._cancel_event is not None:
            self._cancel_event.set()
