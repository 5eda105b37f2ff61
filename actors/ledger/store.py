"""The ledger: ``track_steps`` (who may run a step) and ``processing_logs`` (what happened).

Three operations, each one SQL statement per batch of concurrent callers; a batch travels
as one JSON document expanded by ``jsonb_to_recordset`` (cheaper to build than many arrays):

- :meth:`Ledger.claim` — may this message run the step? One upsert decides for the whole
  batch: a new step, a retry of the same message, or a re-activation of a failed step
  runs (and its ``started`` row is written by the same statement); a completed step
  answers with its recorded output instead (it is never re-run); a step claimed by
  another message is a duplicate.
- :meth:`Ledger.record` — append a ``processing_logs`` row (not waited for).
- :meth:`Ledger.finish` — mark the step completed/failed with its output or error, plus a
  log row, and wait until it is durable. Writes are written in order, so once a finish is
  durable, every row recorded before it is too. The completion of a workflow's only leaf
  completes the run in the same statement (several leaves are checked by :mod:`actors.ledger.runs`
  once each is durable: one statement could not see another replica's leaf committing).

The statements themselves, and why their plans and row locks are as they are, are in
:mod:`actors.ledger.sql`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg

from actors.ledger.sql import CLAIM_SQL, WRITE_SQL
from foundation.group_commit import GroupCommit
from subjects.jsonwire import dumps

log = logging.getLogger(__name__)

__all__ = [
    "Claim",
    "ClaimResult",
    "Ledger",
    "LogRow",
    "StepFinish",
    "StepState",
    "Verdict",
    "Written",
    "new_event_id",
]


def new_event_id() -> str:
    """A time-ordered UUID (version 7 layout): the key a ledger write is recognised by on replay.

    Time-ordered, so the unique index on ``processing_logs.event_id`` grows at its right edge
    instead of taking random inserts all over a large B-tree.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
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
    """The run timed out: nothing more starts until it is resumed."""
    SUPERSEDED = "superseded"
    """This replica's outcome came too late: another took the step over (see ``StepFinish.fence``)."""
    EXHAUSTED = "exhausted"
    """The activating message came back after its last try never settled (the process died or
    hung in it): it is dead-lettered, not run again. ``attempt`` is the step's current attempt."""
    UNEXPECTED = "unexpected"
    """An upstream's event for a run in which that upstream never completed (forged, or stray):
    dead-lettered as unexpected, never run."""


@dataclass(frozen=True)
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
    claim_id: str = field(default_factory=new_event_id)
    """Recognises this claim when its batch is replayed (also the ``started`` row's event id)."""


@dataclass(frozen=True)
class ClaimResult:
    verdict: Verdict
    attempt: int = 0
    tries: int = 0
    """Tries of the activating message so far, this one included (decides exhaustion)."""
    output: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    """For a fan-in step: each upstream's recorded output, by track."""


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Written:
    """What :meth:`Ledger.finish` did (a plain row record is always ``Written(True)``)."""

    applied: bool
    """``False``: fenced off, the step had moved on to a later attempt."""
    completed_run: str | None = None
    """The workflow whose run this outcome completed (``ends_run``), to be announced."""


@dataclass(frozen=True)
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


def _verdict(row: asyncpg.Record) -> ClaimResult:
    if row["claimed"] == "running":
        inputs = json.loads(row["inputs"]) if row["inputs"] else None
        return ClaimResult(Verdict.RUN, attempt=row["attempts"], tries=row["tries"], inputs=inputs)
    if row["claimed"] == "gated":
        return ClaimResult(Verdict.GATED)
    if row["prior_status"] == "completed":
        if row["activated_by"] == row["seq"]:  # the completing message itself, redelivered: re-announce
            output = json.loads(row["prior_output"]) if row["prior_output"] else {}
            return ClaimResult(Verdict.ALREADY_DONE, output=output)
        return ClaimResult(Verdict.COMPLETED_BEFORE)
    if row["exhausted"]:
        return ClaimResult(Verdict.EXHAUSTED, attempt=row["prior_attempts"])
    if not row["source_ok"]:
        return ClaimResult(Verdict.UNEXPECTED)
    if row["run_status"] == "timed_out":
        return ClaimResult(Verdict.CLOSED)
    if not row["deps_met"]:
        return ClaimResult(Verdict.WAITING)
    return ClaimResult(Verdict.DUPLICATE)


def _written(item: LogRow | StepFinish, applied: set[tuple[str, str]], completed: dict[str, str]) -> Written:
    if not isinstance(item, StepFinish):
        return _WRITTEN
    if (item.row.correlation_id, item.row.track) not in applied:
        return Written(item.fence is None)  # no row to update (unfenced) counts as written
    run = completed.get(item.row.correlation_id) if item.ends_run else None
    return Written(True, run) if run is not None else _WRITTEN


_WRITTEN = Written(True)


def claim_params(claims: Iterable[Claim]) -> tuple[str]:
    """``CLAIM_SQL``'s parameter: the batch as one JSON document (one native encode, cheaper than
    an array per column)."""
    batch = [
        {
            "cid": c.correlation_id,
            "track": c.track,
            "seq": c.stream_seq,
            "workflow": c.workflow,
            "user_id": c.user_id,
            "trace_id": c.trace_id,
            "details": c.started_details,
            "at": c.at.isoformat(),
            "deps": list(c.fan_in),
            "root": c.root,
            "gate": c.gate,
            "timeout_s": c.run_timeout_s,
            "definition": c.definition if c.root else None,
            "claim_id": c.claim_id,
            "max_tries": c.max_tries,
            "source": c.source,
        }
        for c in claims
    ]
    return (dumps(batch),)


def write_params(items: Iterable[LogRow | StepFinish]) -> tuple[str, str]:
    """``WRITE_SQL``'s parameters: every log row, and the step outcomes."""
    logs = []
    steps = []
    for item in items:
        row = item.row if isinstance(item, StepFinish) else item
        details = row.details
        if isinstance(item, StepFinish):
            if details is None and item.output is not None:
                details = {"payload": item.output}  # the same object: serialised once per row
            steps.append(
                {
                    "cid": row.correlation_id,
                    "track": row.track,
                    "status": item.status,
                    "output": item.output,
                    "error": row.error,
                    "at": row.occurred_at.isoformat(),
                    "fence": item.fence,
                    "ends_run": item.ends_run,
                    "eid": row.event_id,
                }
            )
        fenced = isinstance(item, StepFinish) and item.fence is not None
        logs.append(
            {
                "u": row.user_id,
                "c": row.correlation_id,
                "t": row.track,
                "e": row.event_type,
                "a": row.attempt,
                "d": details,
                "er": row.error,
                "et": row.error_type,
                "tr": row.trace_id,
                "sq": row.stream_seq,
                "du": row.duration_ms,
                "oc": row.occurred_at.isoformat(),
                "f": fenced,
                "i": row.event_id,
            }
        )
    return dumps(logs), dumps(steps)


class Ledger:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 500, linger_s: float = 0.0) -> None:
        self._pool = pool
        self.lost_rows = 0
        """Rows queued by :meth:`record` that failed for good (not a transient outage: those wait)."""
        self._claims: GroupCommit[Claim, ClaimResult] = GroupCommit(
            self._claim_batch, name="ledger-claims", max_batch=max_batch, parallel=2, linger_s=linger_s
        )
        self._writes: GroupCommit[LogRow | StepFinish, Written] = GroupCommit(
            self._write_batch, name="ledger-writes", max_batch=max_batch, parallel=1, linger_s=linger_s
        )

    def start(self) -> None:
        self._claims.start()
        self._writes.start()

    async def close(self, timeout_s: float | None = None) -> int:
        """Flush what is queued; after ``timeout_s`` drop the rest. Returns how many were dropped."""
        claims, writes = await asyncio.gather(self._claims.close(timeout_s), self._writes.close(timeout_s))
        return claims + writes

    @property
    def transient_failures(self) -> int:
        return self._claims.failures + self._writes.failures

    # The futures are returned, not awaited here: a step's await resumes one coroutine fewer.

    def claim(self, claim: Claim) -> asyncio.Future[ClaimResult]:
        return self._claims.enqueue(claim)

    def record(self, row: LogRow) -> None:
        """Queue a row without waiting for it (a later durable write orders it before itself)."""
        self._writes.enqueue(row).add_done_callback(self._unwaited)

    def _unwaited(self, future: asyncio.Future[Written]) -> None:
        """A row nobody waits for that could not be written: said and counted, never silent."""
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.lost_rows += 1
            log.error(
                "a processing_logs row could not be written and is lost: %s: %s", type(exc).__name__, exc
            )

    def record_durably(self, row: LogRow) -> asyncio.Future[Written]:
        return self._writes.enqueue(row)

    def finish(self, outcome: StepFinish) -> asyncio.Future[Written]:
        """Durably record a step's outcome (and, by ordering, every row recorded before it)."""
        return self._writes.enqueue(outcome)

    async def first_failure(self, correlation_id: str, track: str) -> datetime | None:
        """When this step first failed (for a dead letter's ``Tracks-First-Failure``); failure path only."""
        async with self._pool.acquire() as conn:
            value: datetime | None = await conn.fetchval(
                "SELECT min(occurred_at) FROM processing_logs "
                "WHERE correlation_id = $1 AND track_id = $2 AND event_type = 'failed'",
                correlation_id,
                track,
            )
        return value

    async def step(self, correlation_id: str, track: str) -> StepState | None:
        """One step's state as recorded (failure paths and tools: not group-committed)."""
        row = await self._pool.fetchrow(
            "SELECT correlation_id, track_id, status, attempts, activated_by, user_id, workflow, "
            "output::text AS output FROM track_steps WHERE correlation_id = $1 AND track_id = $2",
            correlation_id,
            track,
        )
        return StepState.of(row) if row is not None else None

    async def unsettled_steps(
        self, track: str, acked_through: int, idle_s: float, limit: int = 500
    ) -> list[StepState]:
        """Steps still ``running`` whose activating message the consumer no longer holds (at or
        below its ack floor) and that nothing touched for ``idle_s``: their message was given up."""
        rows = await self._pool.fetch(
            "SELECT correlation_id, track_id, status, attempts, activated_by, user_id, workflow, "
            "output::text AS output FROM track_steps "
            "WHERE track_id = $1 AND status = 'running' AND activated_by <= $2 "
            "AND updated_at < now() - make_interval(secs => $3) ORDER BY activated_by LIMIT $4",
            track,
            acked_through,
            idle_s,
            limit,
        )
        return [StepState.of(r) for r in rows]

    async def _claim_batch(self, claims: Sequence[Claim]) -> list[ClaimResult]:
        # One statement may not claim the same step twice: the first wins, the rest are duplicates.
        first: dict[tuple[str, str], Claim] = {}
        for c in claims:
            first.setdefault((c.correlation_id, c.track), c)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(CLAIM_SQL, *claim_params(first.values()))
        by_key = {(r["cid"], r["track"]): r for r in rows}
        results = []
        for c in claims:
            key = (c.correlation_id, c.track)
            if first[key] is not c:
                results.append(ClaimResult(Verdict.DUPLICATE))
                continue
            results.append(_verdict(by_key[key]))
        return results

    async def _write_batch(self, items: Sequence[LogRow | StepFinish]) -> list[Written]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(WRITE_SQL, *write_params(items))
        applied: set[tuple[str, str]] = set()
        completed: dict[str, str] = {}  # correlation ID -> workflow of the run this batch completed
        for r in rows:
            if r["track_id"] is None:
                completed[r["correlation_id"]] = r["completed_run"]
            else:
                applied.add((r["correlation_id"], r["track_id"]))
        return [_written(item, applied, completed) for item in items]
