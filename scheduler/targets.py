"""Is a schedule's target consumed? A tick nobody consumes ends "failed: timed out" much later.

A target is consumed when a durable consumer on ``TRACKS`` filters its run subject
(``tracks.<target>.run`` or ``tracks.<target>.run.*``: a track's own consumer, see
``actors.transport.pull.ConsumerSpec``), or when a workflow module given on the command line
declares a track of that name. The consumers are read from JetStream (``tracks schedule add``
warns, ``--strict`` refuses; ``tracks schedule ls`` shows it); a consumer exists from an actor's
first start on, so a track whose actor is stopped still counts, while one that never ran does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from subjects import STREAM, SubjectKind, names

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["consumed", "consuming_tracks", "unconsumed_warning"]


async def consuming_tracks(js: JetStreamContext) -> set[str]:
    """The tracks whose run subject some durable consumer of ``TRACKS`` filters."""
    tracks: set[str] = set()
    for info in await js.consumers_info(STREAM):
        config = info.config
        if not config.durable_name:
            continue
        filters = list(config.filter_subjects or []) + (
            [config.filter_subject] if config.filter_subject else []
        )
        tracks.update(t for t in map(_run_track, filters) if t is not None)
    return tracks


def _run_track(subject: str) -> str | None:
    """``tracks.X.run`` or ``tracks.X.run.*`` (``>``) → X; a wildcard track or another subject → None."""
    parts = subject.split(".")
    if len(parts) not in (3, 4) or parts[0] != names.ROOT or parts[2] != SubjectKind.RUN:
        return None
    if parts[1] in ("*", ">") or (len(parts) == 4 and parts[3] not in ("*", ">")):
        return None
    return parts[1]


def consumed(target: str, tracks: Iterable[str], workflow_tracks: Iterable[str] = ()) -> bool:
    return target in set(tracks) or target in set(workflow_tracks)


def unconsumed_warning(target: str) -> str:
    return (
        f"no workflow or track consumes {names.run(target)}.*: its ticks will end 'failed: timed out'; "
        f"start the actor that declares track {target!r} (`tracks actor run MODULE`), or check --target"
    )
