"""How a step can fail, and what the runtime does about each kind."""

from __future__ import annotations

__all__ = [
    "CycleError",
    "PermanentError",
    "PoisonMessage",
    "RetryableError",
    "StepCancelled",
    "WorkflowError",
]


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the message goes to the DLQ at once."""


class RetryableError(Exception):
    """Raised by a handler to ask for a retry (any other exception is retried too)."""

    def __init__(self, message: str = "", *, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PoisonMessage(Exception):
    """The message itself is unusable (bad JSON, wrong schema, bad headers): never retried."""


class StepCancelled(Exception):
    """The step's run was cancelled (``ctx.raise_if_cancelled()``): the step is recorded as
    cancelled and its message acked; nothing downstream starts, nothing is retried."""


class WorkflowError(ValueError):
    """A workflow definition is invalid (unknown track, duplicate name, ...)."""


class CycleError(WorkflowError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"dependency cycle: {' → '.join(cycle)}")
