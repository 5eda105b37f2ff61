"""The actor runtime: declare tracks in a workflow, run them on durable JetStream consumers."""

from actors.client import RunCancelled, RunFailed, RunTimedOut, TracksClient, WaitTimeout, new_correlation_id
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
