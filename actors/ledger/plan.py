"""What the ledger must know about a track's place in its workflow, computed once per track."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.track import Track
from actors.workflow import Workflow

__all__ = ["StepPlan", "describe"]


@dataclass(frozen=True)
class StepPlan:
    workflow: str | None
    root: bool
    """A root step opens the workflow run (with its deadline)."""
    fan_in: tuple[str, ...]
    """Upstreams when there are several: the step runs once all completed, with their outputs."""
    gate: str | None
    """The manual phase this step waits for, unless the workflow proceeds on its own."""
    run_timeout_s: float | None
    leaves: tuple[str, ...]
    """All leaves of the workflow when this track is one of them (its completion may end the run)."""
    definition: dict[str, Any] | None = None
    """The workflow as data, stored with each run (see :func:`describe`)."""
    linked: bool = True
    """A fan-in step downstream links to this step's span: its ``traceparent`` is kept with the
    step (``track_steps.trace_context``); for other steps of a workflow it is not stored."""

    @classmethod
    def of(cls, track: Track) -> StepPlan:
        wf = track.graph
        if wf is None:
            return cls(
                track.workflow, not track.after, track.after if len(track.after) > 1 else (), None, None, ()
            )
        phase = wf.phase_of(track.name)
        gate = phase.name if phase is not None and phase.manual and not wf.auto_proceed else None
        leaves = tuple(t.name for t in wf.leaves)
        return cls(
            workflow=wf.name,
            root=not track.after,
            fan_in=track.after if len(track.after) > 1 else (),
            gate=gate,
            run_timeout_s=wf.timeout_s,
            leaves=leaves if track.name in leaves else (),
            definition=describe(wf) if not track.after else None,
            linked=any(track.name in t.after and len(t.after) > 1 for t in wf),
        )


def describe(wf: Workflow) -> dict[str, Any]:
    """A workflow as plain data: enough to answer progress, proceed and resume without its code."""
    return {
        "name": wf.name,
        "tracks": {t.name: list(t.after) for t in wf},
        "phases": [{"name": p.name, "tracks": list(p.tracks), "manual": p.manual} for p in wf.phases],
        "leaves": [t.name for t in wf.leaves],
        "autoProceed": wf.auto_proceed,
        "timeoutS": wf.timeout_s,
    }
