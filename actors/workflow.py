"""A workflow: named tracks, their dependencies, optional phases and a run timeout.

Validated when declared: an unknown upstream, a duplicate name or a cycle is refused with
an error naming it; phases must cover the tracks and respect the dependency order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from actors.errors import CycleError, WorkflowError
from actors.track import Handler, Track, TrackOptions
from subjects import check_token

__all__ = ["Phase", "Workflow", "find_cycle"]


@dataclass(frozen=True)
class Phase:
    """A group of steps that progress on their own; entering a ``manual`` phase needs a person
    to release it (``tracks proceed CID``) unless the workflow proceeds automatically."""

    name: str
    tracks: tuple[str, ...]
    manual: bool = False

    def __post_init__(self) -> None:
        check_token(self.name, "phase name")
        if not self.tracks:
            raise WorkflowError(f"phase {self.name} has no tracks")


class Workflow:
    """Declare tracks with ``@workflow.track("name", after=[...])``."""

    def __init__(
        self,
        name: str,
        *,
        phases: Sequence[Phase] = (),
        timeout_s: float | None = None,
        auto_proceed: bool = False,
    ) -> None:
        self.name = check_token(name, "workflow name")
        if timeout_s is not None and timeout_s <= 0:
            raise WorkflowError(f"workflow {name}: timeout_s must be > 0, got {timeout_s}")
        self.phases = tuple(phases)
        self.timeout_s = timeout_s
        self.auto_proceed = auto_proceed
        """Manual phases release themselves (e.g. in tests, or once a process is trusted)."""
        self._tracks: dict[str, Track] = {}
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise WorkflowError(f"workflow {name}: phase names repeat: {names}")
        if self.phases and self.phases[0].manual:
            raise WorkflowError(
                f"workflow {name}: the first phase ({self.phases[0].name}) cannot be manual; a run starts it"
            )

    def track(
        self,
        name: str,
        *,
        after: list[str] | tuple[str, ...] = (),
        options: TrackOptions | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(
                Track.from_handler(name, handler, after=tuple(after), options=options, workflow=self.name)
            )
            return handler

        return register

    def add(self, track: Track) -> None:
        track = dataclasses.replace(track, workflow=self.name, graph=self)
        if track.name in self._tracks:
            raise WorkflowError(f"workflow {self.name}: track {track.name!r} is declared twice")
        candidate = {**self._tracks, track.name: track}
        cycle = find_cycle({name: t.after for name, t in candidate.items()})
        if cycle:
            raise CycleError(cycle)
        self._tracks[track.name] = track

    def validate(self) -> None:
        """Call once all tracks are declared: upstreams exist, phases cover and respect the graph."""
        for track in self._tracks.values():
            for upstream in track.after:
                if upstream not in self._tracks:
                    raise WorkflowError(
                        f"workflow {self.name}: track {track.name!r} depends on unknown track {upstream!r}"
                    )
        if not self.phases:
            return
        order: dict[str, int] = {}
        for i, phase in enumerate(self.phases):
            for name in phase.tracks:
                if name not in self._tracks:
                    raise WorkflowError(
                        f"workflow {self.name}: phase {phase.name} names unknown track {name!r}"
                    )
                if name in order:
                    raise WorkflowError(f"workflow {self.name}: track {name!r} is in two phases")
                order[name] = i
        missing = sorted(set(self._tracks) - set(order))
        if missing:
            raise WorkflowError(f"workflow {self.name}: tracks in no phase: {', '.join(missing)}")
        for track in self._tracks.values():
            for upstream in track.after:
                if order[upstream] > order[track.name]:
                    raise WorkflowError(
                        f"workflow {self.name}: {track.name!r} (phase {self.phases[order[track.name]].name}) "
                        f"depends on {upstream!r} of a later phase ({self.phases[order[upstream]].name})"
                    )

    def phase_of(self, track: str) -> Phase | None:
        for phase in self.phases:
            if track in phase.tracks:
                return phase
        return None

    @property
    def leaves(self) -> list[Track]:
        """Tracks nothing depends on: the run is complete when all of them are."""
        return [t for t in self._tracks.values() if not self.dependents(t.name)]

    def __getitem__(self, name: str) -> Track:
        try:
            return self._tracks[name]
        except KeyError:
            raise WorkflowError(f"workflow {self.name} has no track {name!r}") from None

    def __iter__(self) -> Iterator[Track]:
        return iter(self._tracks.values())

    def __len__(self) -> int:
        return len(self._tracks)

    @property
    def roots(self) -> list[Track]:
        return [t for t in self._tracks.values() if not t.after]

    def dependents(self, name: str) -> list[Track]:
        return [t for t in self._tracks.values() if name in t.after]


def find_cycle(graph: dict[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle as ``[a, b, c, a]`` (following dependency edges), or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for upstream in graph.get(node, ()):
            if state.get(upstream) == 1:
                cycle = [*path[path.index(upstream) :], upstream]
                return list(reversed(cycle))
            if upstream not in state and (found := visit(upstream)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return None
