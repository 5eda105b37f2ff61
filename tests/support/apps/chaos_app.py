"""A fan-in workflow for the chaos test: ``tracks actor run tests.support.apps.chaos_app``.

Two roots fan in to a join, which feeds the leaf::

    <prefix>-ra ─┐
                 ├─> <prefix>-join ─> <prefix>-leaf
    <prefix>-rb ─┘

Every handler, when it has its result and is about to return, appends one line
``track<TAB>cid<TAB>attempt<TAB>pid`` to the marker file (one ``write`` on an ``O_APPEND``
descriptor: lines of concurrent processes never interleave). The test compares these
handler completions with what the ledger and the streams say.

Environment:

    TRACKS_TEST_PREFIX        names the tracks and the workflow (``chaos-<prefix>``)
    TRACKS_CHAOS_MARKS        the marker file (required by the handlers)
    TRACKS_CHAOS_SLEEP_S      the longest a root sleeps (default 0.2; the join and the leaf sleep
                              a quarter of it); each step's sleep is derived from its cid, so the
                              two roots of a run finish at different moments, sometimes together
"""

from __future__ import annotations

import asyncio
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from actors import PermanentError, TrackContext, Workflow

__all__ = ["ChaosTracks", "Marker", "build_workflow", "chaos_tracks", "read_markers"]


class Job(BaseModel):
    n: int


class Root(BaseModel):
    n: int
    side: str


class Joined(BaseModel):
    n: int
    sides: list[str]


class Leaf(BaseModel):
    n: int
    ok: bool


@dataclass(frozen=True)
class ChaosTracks:
    workflow: str
    ra: str
    rb: str
    join: str
    leaf: str

    @property
    def all(self) -> tuple[str, str, str, str]:
        return self.ra, self.rb, self.join, self.leaf


@dataclass(frozen=True)
class Marker:
    """One handler run that reached its return."""

    track: str
    cid: str
    attempt: int
    pid: int


def chaos_tracks(prefix: str) -> ChaosTracks:
    return ChaosTracks(f"chaos-{prefix}", f"{prefix}-ra", f"{prefix}-rb", f"{prefix}-join", f"{prefix}-leaf")


def read_markers(path: Path) -> list[Marker]:
    """Every complete marker line of ``path`` (a torn last line of a killed writer is skipped)."""
    if not path.exists():
        return []
    markers = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[3].isdigit():
            markers.append(Marker(parts[0], parts[1], int(parts[2]), int(parts[3])))
    return markers


def _sleep_s(cid: str, track: str, longest: float) -> float:
    return longest * (zlib.crc32(f"{cid}:{track}".encode()) % 1000) / 1000


def build_workflow(prefix: str, marks: Path | None = None, sleep_s: float = 0.2) -> Workflow:
    names = chaos_tracks(prefix)
    wf = Workflow(names.workflow)

    def mark(ctx: TrackContext) -> None:
        if marks is None:
            raise RuntimeError("TRACKS_CHAOS_MARKS is not set: the chaos handlers need a marker file")
        line = f"{ctx.track}\t{ctx.correlation_id}\t{ctx.attempt}\t{os.getpid()}\n".encode()
        fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    @wf.track(names.ra)
    async def ra(ctx: TrackContext, job: Job) -> Root:
        await asyncio.sleep(_sleep_s(ctx.correlation_id, ctx.track, sleep_s))
        mark(ctx)
        return Root(n=job.n, side="a")

    @wf.track(names.rb)
    async def rb(ctx: TrackContext, job: Job) -> Root:
        await asyncio.sleep(_sleep_s(ctx.correlation_id, ctx.track, sleep_s))
        mark(ctx)
        return Root(n=job.n, side="b")

    @wf.track(names.join, after=[names.ra, names.rb])
    async def join(ctx: TrackContext, inputs: dict[str, dict[str, object]]) -> Joined:
        """Both upstream outputs, of the same run: anything else is a coordination bug (DLQ)."""
        if set(inputs) != {names.ra, names.rb}:
            raise PermanentError(f"join got upstreams {sorted(inputs)}, not both roots")
        ns = {inputs[names.ra].get("n"), inputs[names.rb].get("n")}
        if len(ns) != 1:
            raise PermanentError(f"join got outputs of different runs: n = {sorted(map(str, ns))}")
        await asyncio.sleep(_sleep_s(ctx.correlation_id, ctx.track, sleep_s / 4))
        mark(ctx)
        return Joined(n=int(str(ns.pop())), sides=[str(inputs[t]["side"]) for t in (names.ra, names.rb)])

    @wf.track(names.leaf, after=[names.join])
    async def leaf(ctx: TrackContext, joined: Joined) -> Leaf:
        await asyncio.sleep(_sleep_s(ctx.correlation_id, ctx.track, sleep_s / 4))
        mark(ctx)
        return Leaf(n=joined.n, ok=joined.sides == ["a", "b"])

    wf.validate()
    return wf


_marks = os.environ.get("TRACKS_CHAOS_MARKS")
app = build_workflow(
    os.environ.get("TRACKS_TEST_PREFIX", "chaos-app"),
    Path(_marks) if _marks else None,
    float(os.environ.get("TRACKS_CHAOS_SLEEP_S", "0.2")),
)
