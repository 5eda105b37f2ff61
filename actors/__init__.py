"""The actor runtime: declare tracks in a workflow, run them on durable JetStream consumers."""

from .client import RunFailed, RunTimedOut, TracksClient, WaitTimeout, new_correlation_id
from .context import TrackContext
from .errors import CycleError, PermanentError, PoisonMessage, RetryableError, WorkflowError
from .ledger import Ledger
from .loader import LoadError, load_tracks, load_workflows
from .middleware import Middleware, Next, Step
from .retry import RetryPolicy
from .runtime import Runtime
from .track import Track, TrackOptions
from .workflow import Phase, Workflow

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
    "RunFailed",
    "RunTimedOut",
    "Runtime",
    "Step",
    "Track",
    "TrackContext",
    "TrackOptions",
    "TracksClient",
    "WaitTimeout",
    "Workflow",
    "WorkflowError",
    "load_tracks",
    "load_workflows",
    "new_correlation_id",
]
