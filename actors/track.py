"""A track: a named, typed handler plus the options its consumer runs with."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from actors.errors import WorkflowError
from subjects import check_token

if typing.TYPE_CHECKING:
    from actors.context import TrackContext
    from actors.workflow import Workflow

__all__ = ["Handler", "Track", "TrackOptions"]

Handler = Callable[["TrackContext", Any], Awaitable[Any]]


@dataclass(frozen=True)
class TrackOptions:
    """Per-track overrides; ``None`` takes the value from :class:`foundation.settings.Settings`."""

    max_deliver: int | None = None
    ack_wait_s: float | None = None
    concurrency: int | None = None
    fetch_batch: int | None = None
    time_limit_s: float | None = None
    """Longest a handler may run before it is cancelled (a retryable failure)."""
    retry_base_s: float | None = None
    retry_cap_s: float | None = None
    breaker_threshold: int | None = None
    breaker_cooldown_s: float | None = None
    delivery: Literal["pull", "push"] = "pull"
    """``pull``: the worker fetches batches; ``push``: the server delivers to a queue group."""
    # flow control across all replicas (actors/flow/): held in PostgreSQL, not per process
    rate_limit: str | None = None
    """At most N starts of this track per second/minute/hour, all replicas together: ``"3/s"``."""
    max_running: int | None = None
    """At most N steps of this track running at once, all replicas together."""
    key: Callable[[Any], str] | None = field(default=None, compare=False)
    """The key of a step, from its parsed input (``lambda inp: inp.user_id``): per-key limits and
    round-robin between keys apply to it."""
    max_running_per_key: int | None = None
    key_rate_limit: str | None = None
    """A rate per key (``"1/s"``): each key's starts, all replicas together."""
    on_conflict: Literal["cancel_in_progress", "keep_newest"] | None = None
    """Singleton per key (one running per key unless ``max_running_per_key`` says more): a newer
    step for a key cancels the runs of the key's older steps, the running ones
    (``cancel_in_progress``) or those still waiting (``keep_newest``: repeated triggers collapse
    to the newest)."""
    max_held: int | None = None
    """Most steps one replica holds waiting at this track's gate (default: max_ack_pending, all
    of them); smaller spreads a backlog over the replicas, larger widens round-robin between keys."""
    limits: Sequence[Any] = ()
    """Shared limits drawn from (``actors.flow.Limit`` or the name of one defined elsewhere)."""

    def __post_init__(self) -> None:
        if self.delivery not in ("pull", "push"):
            raise WorkflowError(f"track option delivery must be 'pull' or 'push', got {self.delivery!r}")
        for name in (
            "max_deliver",
            "ack_wait_s",
            "concurrency",
            "fetch_batch",
            "time_limit_s",
            "retry_cap_s",
            "breaker_cooldown_s",
        ):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise WorkflowError(f"track option {name} must be > 0, got {value}")
        for name in ("max_running", "max_running_per_key", "max_held"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise WorkflowError(f"track option {name} must be > 0, got {value}")
        if (self.max_running_per_key is not None or self.key_rate_limit is not None) and self.key is None:
            raise WorkflowError(
                "track options max_running_per_key/key_rate_limit need key=callable(input) -> str"
            )
        if self.on_conflict not in (None, "cancel_in_progress", "keep_newest"):
            raise WorkflowError(
                "track option on_conflict must be 'cancel_in_progress' or 'keep_newest', "
                f"got {self.on_conflict!r}"
            )
        if self.on_conflict is not None and self.key is None:
            raise WorkflowError("track option on_conflict needs key=callable(input)")
        if isinstance(self.limits, list):
            object.__setattr__(self, "limits", tuple(self.limits))
        for name in ("retry_base_s", "breaker_threshold"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise WorkflowError(f"track option {name} must be >= 0, got {value}")


@dataclass(frozen=True)
class Track:
    name: str
    handler: Handler
    after: tuple[str, ...] = ()
    """Upstream tracks: this track runs when they complete (their payloads are its input)."""
    options: TrackOptions = field(default_factory=TrackOptions)
    input_model: type[BaseModel] | None = None
    output_model: type[BaseModel] | None = None
    workflow: str | None = None
    graph: Workflow | None = field(default=None, repr=False, compare=False)
    """The workflow that declared this track (set by :meth:`Workflow.add`)."""

    def __post_init__(self) -> None:
        check_token(self.name, "track name")
        for upstream in self.after:
            check_token(upstream, "upstream track name")
        if not inspect.iscoroutinefunction(self.handler):
            raise WorkflowError(f"track {self.name}: handler must be an async function")

    @classmethod
    def from_handler(
        cls,
        name: str,
        handler: Handler,
        *,
        after: tuple[str, ...] = (),
        options: TrackOptions | None = None,
        workflow: str | None = None,
    ) -> Track:
        """Read the input and output models from the handler's annotations."""
        input_model, output_model = _models_of(handler)
        return cls(name, handler, after, options or TrackOptions(), input_model, output_model, workflow)

    def parse_input(self, payload: Any) -> Any:
        """Payload → the handler's input type (raises pydantic.ValidationError)."""
        if self.input_model is None:
            return payload
        return self.input_model.model_validate(payload)

    def dump_output(self, result: Any) -> dict[str, Any]:
        """Handler result → a JSON object for the completion event."""
        if result is None:
            return {}
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        if isinstance(result, dict):
            return result
        raise TypeError(
            f"track {self.name} returned {type(result).__name__}; return a pydantic model, a dict or None"
        )


def _models_of(handler: Handler) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    try:
        hints = typing.get_type_hints(handler)
    except Exception as exc:  # a forward reference that cannot be resolved
        raise WorkflowError(f"cannot read the annotations of {handler.__qualname__}: {exc}") from exc
    params = [
        p for p in inspect.signature(handler).parameters.values() if p.default is inspect.Parameter.empty
    ]
    if len(params) != 2:
        raise WorkflowError(
            f"{handler.__qualname__} must take (ctx, payload), it requires {[p.name for p in params]}"
        )
    params_names = [p.name for p in params]
    return _as_model(hints.get(params_names[1])), _as_model(hints.get("return"))


def _as_model(hint: Any) -> type[BaseModel] | None:
    return hint if inspect.isclass(hint) and issubclass(hint, BaseModel) else None
