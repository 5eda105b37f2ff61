"""What the ledger is asked and answers: claims, log rows, step outcomes, verdicts, step states.

Plain frozen values, built on the hot path (one claim and one outcome per step); the store
(:mod:`actors.ledger.store`) turns them into its batch statements' parameters and back.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg

__all__ = [
    "Claim",
    "ClaimResult",
    "LogRow",
    "StepFinish",
    "StepState",
    "Verdict",
    "Written",
    "new_event_id",
]


_bits = random.getrandbits


def new_event_id() -> str:
    """A time-ordered UUID (version 7 layout): the key a ledger write is recognised by on replay.

    Time-ordered, so the unique index on ``processing_logs.event_id`` grows at its right edge
    instead of taking random inserts all over a large B-tree. The 74 random bits come from
    :mod:`random` (seeded from the OS, reseeded in a forked child): a key needs uniqueness, not
    secrecy, and ``os.urandom`` was a system call per row (~2 % of a step's CPU in the bench).
    """
    ms = time.time_ns() // 1_000_000
    rand = _bits(74)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
    h = f"{value | rand & ((1 << 62) - 1):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Verdict(StrEnum):
    RUN = "run"
    ALREADY_DONE = "already_done"
    """The message that completed the step, redelivered (its ack was lost, or the process died
    between recording and announcing): the recorded output is re-announced, the handler not run."""
    COMPLETED_BEFORE = "completed_before"
    """Another message for a step that completed (a duplicate trigger, a fan-in's other
    upstream arriving late): nothing to run or announce."""
    DUPLICATE = "duplicate"
    """Another message holds the step (a concurrent duplicate, or the other upstream of a fan-in)."""
    WAITING = "waiting"
    """A fan-in step whose other upstreams have not completed yet."""
    GATED = "gated"
    """The step's manual phase is not released: it waits for ``tracks proceed``."""
    CLOSED = "closed"
    """The run timed out (nothing more starts until it is resumed) or was cancelled (for good)."""
    SUPERSEDED = "superseded"
    """This replica's outcome came too late: another took the step over (see ``StepFinish.fence``)."""
    EXHAUSTED = "exhausted"
    """The activating message came back after its last try never settled (the process died or
    hung in it): it is dead-lettered, not run again. ``attempt`` is the step's current attempt."""
    UNEXPECTED = "unexpected"
    """An upstream's event for a run in which that upstream never completed (forged, or stray):
    dead-lettered as unexpected, never run."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A request to run a step; when granted, its ``started`` row is written by the same statement."""

    correlation_id: str
    track: str
    stream_seq: int
    workflow: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    started_details: dict[str, Any] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fan_in: tuple[str, ...] = ()
    root: bool = False
    gate: str | None = None
    run_timeout_s: float | None = None
    definition: dict[str, Any] | None = None
    """The workflow's definition, stored with the run a root step opens."""
    source: str | None = None
    """The upstream whose completion event this is (``None`` for a direct trigger): it must have
    completed in this run."""
    max_tries: int = 1_000_000
    """Tries of one activating message before it is exhausted (the track's ``max_deliver``)."""
    trace_context: str | None = None
    """The step's span (W3C ``traceparent``): kept with the run a root opens, and with the step
    when ``linked``."""
    linked: bool = True
    """A fan-in step downstream links to this step's span: the step keeps its ``traceparent``."""
    claim_id: str = field(default_factory=new_event_id)
    """Recognises this claim when its batch is replayed (also the ``started`` row's event id)."""


@dataclass(frozen=True, slots=True)
class ClaimResult:
    verdict: Verdict
    attempt: int = 0
    tries: int = 0
    """Tries of the activating message so far, this one included (decides exhaustion)."""
    output: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    """For a fan-in step: each upstream's recorded output, by track."""
    run_trace: str | None = None
    """The run's ``traceparent`` (stored by the claim that opened it): the step joins that trace."""
    causes: dict[str, str | None] | None = None
    """For a fan-in step: each upstream step's ``traceparent``, by track (its span links)."""
    run_status: str | None = None
    """For ``CLOSED``: how the run ended (``timed_out`` or ``cancelled``); with an ``attempt``, the
    step this message activated is still ``running`` in a cancelled run (to be closed)."""


@dataclass(frozen=True, slots=True)
class LogRow:
    correlation_id: str
    track: str
    event_type: str
    attempt: int = 1
    details: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    stream_seq: int | None = None
    duration_ms: float | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    event_id: str = field(default_factory=new_event_id)
    """Recognises the row when its batch is replayed (written once, whatever happens)."""


@dataclass(frozen=True, slots=True)
class StepFinish:
    """A step's outcome: updates ``track_steps`` and appends its log row (``row``) in one write.

    ``fence`` is the attempt number the claim granted: the outcome applies only while the
    step is still on that attempt. A replica that stalled past its ack wait, while another
    replica took the step over, finds its late outcome fenced off (recorded as
    ``superseded``) instead of completing the step a second time.
    """

    status: str  # completed | failed
    row: LogRow
    output: dict[str, Any] | None = None
    fence: int | None = None
    ends_run: bool = False
    """The workflow's only leaf completing: the same statement completes the run (if running)."""


@dataclass(frozen=True, slots=True)
class Written:
    """What :meth:`Ledger.finish` did (a plain row record is always ``Written(True)``)."""

    applied: bool
    """``False``: fenced off, the step had moved on to a later attempt."""
    completed_run: str | None = None
    """The workflow whose run this outcome completed (``ends_run``), to be announced."""


@dataclass(frozen=True, slots=True)
class StepState:
    correlation_id: str
    track: str
    status: str
    attempts: int
    activated_by: int | None
    user_id: str | None
    workflow: str | None
    output: dict[str, Any] | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> StepState:
        output = json.loads(row["output"]) if row["output"] else None
        return cls(
            row["correlation_id"],
            row["track_id"],
            row["status"],
            row["attempts"],
            row["activated_by"],
            row["user_id"],
            row["workflow"],
            output,
        )
