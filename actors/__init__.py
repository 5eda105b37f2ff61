"""The actor runtime: declare tracks in a workflow, run them on durable JetStream consumers.

The names below are imported on first use (PEP 562): ``from actors.errors import ...`` or a
read-only CLI command does not pay for the runtime, the client, NATS and OpenTelemetry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from subjects._exports import lazy_exports

if TYPE_CHECKING:
    from actors.client import (
        RunCancelled,
        RunFailed,
        RunTimedOut,
        TracksClient,
        WaitTimeout,
        new_correlation_id,
    )
    from actors.context import TrackContext
    from actors.errors import (
        CycleError,
        PermanentError,
        PoisonMessage,
        RetryableError,
        StepCancelled,
        WorkflowError,
    )
    from actors.ledger.store import Ledger
    from actors.loader import LoadError, load_tracks, load_workflows
    from actors.middleware.base import Middleware, Next, Step
    from actors.retry import RetryPolicy
    from actors.runtime.current import current_runtime
    from actors.runtime.process import Runtime
    from actors.track import Track, TrackOptions
    from actors.workflow import Phase, Workflow

_WHERE = {
    "actors.client": (
        "RunCancelled",
        "RunFailed",
        "RunTimedOut",
        "TracksClient",
        "WaitTimeout",
        "new_correlation_id",
    ),
    "actors.context": ("TrackContext",),
    "actors.errors": (
        "CycleError",
        "PermanentError",
        "PoisonMessage",
        "RetryableError",
        "StepCancelled",
        "WorkflowError",
    ),
    "actors.ledger.store": ("Ledger",),
    "actors.loader": ("LoadError", "load_tracks", "load_workflows"),
    "actors.middleware.base": ("Middleware", "Next", "Step"),
    "actors.retry": ("RetryPolicy",),
    "actors.runtime.current": ("current_runtime",),
    "actors.runtime.process": ("Runtime",),
    "actors.track": ("Track", "TrackOptions"),
    "actors.workflow": ("Phase", "Workflow"),
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "CycleError",
    "Ledger",
    "LoadError",
    "Middleware",
    "Next",
    "PermanentError",
    "Phase",
    "PoisonMessage",
    "RetryPolicy",
    "RetryableError",
    "RunCancelled",
    "RunFailed",
    "RunTimedOut",
    "Runtime",
    "Step",
    "StepCancelled",
    "Track",
    "TrackContext",
    "TrackOptions",
    "TracksClient",
    "WaitTimeout",
    "Workflow",
    "WorkflowError",
    "current_runtime",
    "load_tracks",
    "load_workflows",
    "new_correlation_id",
]
