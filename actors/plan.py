"""What the ledger must know about a track's place in its workflow, computed once per track."""

from __future__ import annotations

from dataclasses import dataclass

from .track import Track

__all__ = ["StepPlan"]


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

    @classmethod
    def of(cls, track: Track) -> StepPlan:
        wf = track.graph
        if wf is None:
            return cls(track.workflow, not track.after, track.after if len(track.after) > 1 else (), None, None, ())
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
        )
