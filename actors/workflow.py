"""A workflow: named tracks and their dependencies, validated when declared."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .errors import CycleError, WorkflowError
from .track import Handler, Track, TrackOptions

__all__ = ["Workflow", "find_cycle"]


class Workflow:
    """Declare tracks with ``@workflow.track("name", after=[...])``.

    The graph is checked on every declaration and by :meth:`validate`: an upstream that
    is never declared, or a cycle, is refused with an error naming it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tracks: dict[str, Track] = {}

    def track(
        self,
        name: str,
        *,
        after: list[str] | tuple[str, ...] = (),
        options: TrackOptions | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(Track.from_handler(name, handler, after=tuple(after), options=options, workflow=self.name))
            return handler

        return register

    def add(self, track: Track) -> None:
        if track.name in self._tracks:
            raise WorkflowError(f"workflow {self.name}: track {track.name!r} is declared twice")
        candidate = {**self._tracks, track.name: track}
        cycle = find_cycle({name: t.after for name, t in candidate.items()})
        if cycle:
            raise CycleError(cycle)
        self._tracks[track.name] = track

    def validate(self) -> None:
        """Every upstream is a declared track (call once all tracks are declared)."""
        for track in self._tracks.values():
            for upstream in track.after:
                if upstream not in self._tracks:
                    raise WorkflowError(
                        f"workflow {self.name}: track {track.name!r} depends on unknown track {upstream!r}"
                    )

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
                cycle = path[path.index(upstream):] + [upstream]
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
