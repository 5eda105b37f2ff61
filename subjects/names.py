"""Subject names: the only place that knows how ``tracks.X.run.<cid>`` is spelled.

tracks.<track>.run[.<cid>]        trigger a track (body: payload or TrackEvent)
tracks.<track>.urgent.<cid>       trigger a track with high priority: its own lane (consumer <track>~urgent)
tracks.<track>.<event>.<cid>      a track's events: completed | failed | data_ready
tracks.workflow.<name>.<outcome>.<cid>   a workflow run ended: completed | failed | timed_out | cancelled
dlq.<track>.<cid>                 a dead letter
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from subjects.priority import Priority

__all__ = [
    "API_PREFIX",
    "DLQ_STREAM",
    "MAX_DELIVERIES_ADVISORY",
    "METRICS_ROOT",
    "PUSH_DELIVER_PREFIX",
    "STREAM",
    "UNROUTED_CONSUMER",
    "URGENT",
    "ParsedSubject",
    "RunOutcome",
    "SubjectKind",
    "alert",
    "api",
    "check_token",
    "consumer_track",
    "dlq",
    "event",
    "max_deliveries_advisory",
    "metrics",
    "parse",
    "parse_workflow_event",
    "run",
    "run_filters",
    "template",
    "trigger",
    "trigger_filters",
    "unrouted_filter",
    "urgent_consumer",
    "urgent_filter",
    "workflow_cancellations",
    "workflow_event",
    "workflow_events",
    "workflow_outcomes",
]

STREAM = "TRACKS"
DLQ_STREAM = "DLQ"
ROOT = "tracks"
DLQ_ROOT = "dlq"
API_PREFIX = "tracksapi"
"""Request API (``nats.micro`` service ``tracks``): ``tracksapi.<endpoint>``; outside ``tracks.>``,
which the TRACKS stream captures (it would answer every request with a PubAck)."""
METRICS_ROOT = f"{API_PREFIX}.metrics"
"""Resource snapshots on core NATS: ``tracksapi.metrics.<component>.<instance>``."""
PUSH_DELIVER_PREFIX = "_TRACKS_PUSH"
"""Push consumers deliver to ``_TRACKS_PUSH.<track>`` (outside every stream)."""
UNROUTED_CONSUMER = "tracks-unrouted"
"""The durable consumer of triggers no track can consume (a reserved name: no track may take it)."""
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
"""JetStream's advisory when a consumer gives up on a message: ``<prefix>.<stream>.<consumer>``."""

# A subject token that is also safe as a consumer name: no dots, spaces or wildcards.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class SubjectKind(StrEnum):
    RUN = "run"
    COMPLETED = "completed"
    FAILED = "failed"
    DATA_READY = "data_ready"


URGENT = "urgent"
"""The subject token of a high-priority trigger (``tracks.<track>.urgent.<cid>``): parsed as a run."""
_KINDS = frozenset([*(str(k) for k in SubjectKind), URGENT])


def check_token(value: str, what: str) -> str:
    """Refuse a name that would break subject routing, with a message saying why."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):  # fullmatch: `$` lets a final \n through
        raise ValueError(
            f"{what} {value!r} must be 1-128 characters of letters, digits, '_' or '-' "
            "(it becomes a NATS subject token)"
        )
    return value


def run(track: str, correlation_id: str | None = None) -> str:
    base = f"{ROOT}.{track}.{SubjectKind.RUN}"
    return f"{base}.{correlation_id}" if correlation_id else base


def trigger(track: str, correlation_id: str, priority: str | None = None) -> str:
    """Where a trigger of ``track`` goes: its urgent lane for ``high`` priority, else ``run``.

    High-priority triggers have their own subject and consumer (:func:`urgent_consumer`), so a
    backlog of normal and low work on ``tracks.<track>.run.*`` cannot hold them back; the actor
    pulls its urgent lane before its main consumer (``actors.transport.lanes``)."""
    if priority == Priority.HIGH:
        return f"{ROOT}.{track}.{URGENT}.{correlation_id}"
    return run(track, correlation_id)


def urgent_filter(track: str) -> str:
    return f"{ROOT}.{track}.{URGENT}.*"


def urgent_consumer(track: str) -> str:
    """The durable consumer of ``track``'s urgent lane (``~``: no track name can take it)."""
    return f"{track}~{URGENT}"


def consumer_track(consumer: str) -> str:
    """The track a durable consumer serves: its own name, or that of its urgent lane's track."""
    return consumer.removesuffix(f"~{URGENT}")


def trigger_filters(track: str) -> list[str]:
    """Every subject that triggers ``track`` directly: its run subjects and its urgent lane."""
    return [*run_filters(track), urgent_filter(track)]


def event(track: str, kind: SubjectKind, correlation_id: str) -> str:
    return f"{ROOT}.{track}.{kind}.{correlation_id}"


class RunOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


def workflow_event(workflow: str, outcome: RunOutcome, correlation_id: str) -> str:
    """Five tokens: never matched by a track's ``tracks.X.run[.*]`` or ``tracks.X.completed.*`` filters."""
    return f"{ROOT}.workflow.{workflow}.{outcome}.{correlation_id}"


def workflow_events(workflow: str, correlation_id: str) -> str:
    """Every outcome of one run (a subscription's filter)."""
    return f"{ROOT}.workflow.{workflow}.*.{correlation_id}"


def workflow_outcomes() -> str:
    """Every outcome of every workflow run (the scheduler's history follows runs by it)."""
    return f"{ROOT}.workflow.*.*.*"


def parse_workflow_event(subject: str) -> tuple[str, RunOutcome, str] | None:
    """``tracks.workflow.<wf>.<outcome>.<cid>`` → (workflow, outcome, cid); ``None`` for any other."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != ROOT or parts[1] != "workflow":
        return None
    try:
        return parts[2], RunOutcome(parts[3]), parts[4]
    except ValueError:
        return None


def workflow_cancellations() -> str:
    """Every run cancellation of every workflow (what a runtime listens to, to tell its steps)."""
    return f"{ROOT}.workflow.*.{RunOutcome.CANCELLED}.*"


def template(subject: str) -> tuple[str, str | None]:
    """``subject`` without its correlation ID, and that ID: ``tracks.X.completed.<cid>`` →
    ``("tracks.X.completed", cid)``. The first is low-cardinality (span names, the
    ``messaging.destination.template`` attribute); a subject with no ID comes back whole."""
    tokens = subject.split(".")
    n = len(tokens)
    if tokens[0] == ROOT:
        if n >= 5 and tokens[1] == "workflow":  # tracks.workflow.<name>.<outcome>.<cid>
            return ".".join(tokens[:4]), ".".join(tokens[4:])
        if n >= 4 and tokens[2] in _KINDS:  # tracks.<track>.<kind>.<cid> (several tokens: unrouted)
            return ".".join(tokens[:3]), ".".join(tokens[3:])
    elif tokens[0] == DLQ_ROOT and n >= 3:  # dlq.<track>.<cid>
        return ".".join(tokens[:2]), ".".join(tokens[2:])
    return subject, None


def api(endpoint: str) -> str:
    return f"{API_PREFIX}.{endpoint}"


def metrics(component: str, instance: str) -> str:
    return f"{METRICS_ROOT}.{component}.{instance}"


def unrouted_filter() -> str:
    """Triggers whose correlation ID is more than one token: no track's filter matches them."""
    return f"{ROOT}.*.{SubjectKind.RUN}.*.>"


def max_deliveries_advisory(stream: str, consumer: str) -> str:
    return f"{MAX_DELIVERIES_ADVISORY}.{stream}.{consumer}"


def dlq(track: str, correlation_id: str) -> str:
    return f"{DLQ_ROOT}.{track}.{correlation_id}"


def alert(name: str) -> str:
    return f"{ROOT}.alerts.{name}"


def run_filters(track: str) -> list[str]:
    """The filter subjects that trigger ``track`` directly."""
    return [run(track), f"{run(track)}.*"]


@dataclass(frozen=True)
class ParsedSubject:
    track: str
    kind: SubjectKind
    correlation_id: str | None


def parse(subject: str) -> ParsedSubject | None:
    """``tracks.X.<kind>[.<cid>]`` → its parts; ``None`` for any other subject."""
    parts = subject.split(".")
    if len(parts) not in (3, 4) or parts[0] != ROOT:
        return None
    try:
        kind = SubjectKind(parts[2])
    except ValueError:
        if parts[2] != URGENT:
            return None
        kind = SubjectKind.RUN  # a high-priority trigger: a run like any other
    cid = parts[3] if len(parts) == 4 else None
    if cid is None and kind is not SubjectKind.RUN:
        return None
    return ParsedSubject(parts[1], kind, cid)
