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
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from actors.ledger.records import (
    Claim,
    ClaimResult,
    LogRow,
    StepFinish,
    StepState,
    Verdict,
    Written,
    new_event_id,
)
from actors.ledger.redaction import Redactor, redacted_details
from actors.ledger.sql import CLAIM_SQL, WRITE_SQL
from foundation.group_commit import GroupCommit
from subjects.jsonwire import dumps

log = logging.getLogger(__name__)

__all__ = [
    "RECORD_PAYLOADS",
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


def _verdict(row: asyncpg.Record) -> ClaimResult:
    if row["claimed"] == "running":
        inputs = json.loads(row["inputs"]) if row["inputs"] else None
        causes = json.loads(row["causes"]) if row["causes"] else None
        return ClaimResult(
            Verdict.RUN,
            attempt=row["attempts"],
            tries=row["tries"],
            inputs=inputs,
            run_trace=row["run_trace"],
            causes=causes,
        )
    if row["claimed"] == "gated":
        return ClaimResult(Verdict.GATED, run_trace=row["run_trace"])
    if row["prior_status"] == "completed":
        if row["activated_by"] == row["seq"]:  # the completing message itself, redelivered: re-announce
            output = json.loads(row["prior_output"]) if row["prior_output"] else {}
            return ClaimResult(Verdict.ALREADY_DONE, output=output)
        return ClaimResult(Verdict.COMPLETED_BEFORE)
    if row["exhausted"]:
        return ClaimResult(Verdict.EXHAUSTED, attempt=row["prior_attempts"])
    if not row["source_ok"]:
        return ClaimResult(Verdict.UNEXPECTED)
    if row["run_status"] in ("timed_out", "cancelled"):
        # a cancelled run's step left running by this very message (it failed and came back for a
        # retry): its attempt, so the step can be closed as cancelled (a timed-out run may resume it)
        own = row["prior_status"] == "running" and row["activated_by"] == row["seq"]
        closable = own and row["run_status"] == "cancelled"
        return ClaimResult(
            Verdict.CLOSED, attempt=row["prior_attempts"] if closable else 0, run_status=row["run_status"]
        )
    if not row["deps_met"]:
        return ClaimResult(Verdict.WAITING, run_trace=row["run_trace"])
    return ClaimResult(Verdict.DUPLICATE)


def _written(item: LogRow | StepFinish, applied: set[tuple[str, str]], completed: dict[str, str]) -> Written:
    if not isinstance(item, StepFinish):
        return _WRITTEN
    if (item.row.correlation_id, item.row.track) not in applied:
        return Written(item.fence is None)  # no row to update (unfenced) counts as written
    run = completed.get(item.row.correlation_id) if item.ends_run else None
    return Written(True, run) if run is not None else _WRITTEN


_WRITTEN = Written(True)


RECORD_PAYLOADS = ("full", "once", "none")
"""``TRACKS_RECORD_PAYLOADS``: what ``processing_logs`` keeps of payloads.

- ``full`` — every row its payload: a ``started`` row its input, a ``completed`` row its output.
- ``once`` (default) — each payload stored once: an output only in ``track_steps.output`` (the
  ``completed`` row holds none; the chain shows it from there, :mod:`actors.ledger.execution_chain`),
  unless ``TRACKS_REDACT`` asks for a redacted copy in the row; a step's input only when it is
  nobody's output (a trigger, a run's root, a resumed step); a downstream step's ``started`` row
  names its upstream (``details.source``).
- ``none`` — no payload in ``started``/``completed`` rows (``"payload": null`` on a ``completed``
  row); outputs stay in ``track_steps.output``, a run's input and result in ``workflow_runs``
  (what resume, fan-in and the console read).

A ``gated`` row always keeps its input (``tracks proceed`` sends it)."""


def _keep_input(mode: str, claim: Claim) -> bool:
    return mode == "full" or (mode == "once" and claim.source is None)


def _completed_details(mode: str, redacted: bool, output: dict[str, Any]) -> dict[str, Any] | None:
    """A ``completed`` row's details. ``full``: the output (the same object: serialised once per
    row). ``once``: none, the output is stored once in ``track_steps.output`` (the chain reads it
    there), unless ``TRACKS_REDACT`` asks for a redacted copy in the log. ``none``: ``"payload":
    null`` (the chain shows no output)."""
    if mode == "full" or (mode == "once" and redacted):
        return {"payload": output}
    return {"payload": None} if mode == "none" else None


def claim_params(
    claims: Iterable[Claim], redact: Redactor | None = None, record_payloads: str = "full"
) -> tuple[str]:
    """``CLAIM_SQL``'s parameter: the batch as one JSON document (one native encode, cheaper than
    an array per column); ``redact``: the ``TRACKS_REDACT`` hook, for the logged input;
    ``record_payloads``: :data:`RECORD_PAYLOADS`."""
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
            "tp": c.trace_context,
            "link": c.linked,
            "keep": _keep_input(record_payloads, c),
        }
        for c in claims
    ]
    if redact is not None:
        for item in batch:
            item["details"] = redacted_details(redact, str(item["track"]), item["details"])
    return (dumps(batch),)


def write_params(
    items: Iterable[LogRow | StepFinish], redact: Redactor | None = None, record_payloads: str = "full"
) -> tuple[str, str]:
    """``WRITE_SQL``'s parameters: every log row, and the step outcomes (``redact``: the
    ``TRACKS_REDACT`` hook, for payloads in log rows; outputs are kept whole; ``record_payloads``
    ``none``: a ``completed`` row without the output, which ``track_steps`` holds)."""
    logs = []
    steps = []
    for item in items:
        row = item.row if isinstance(item, StepFinish) else item
        details = row.details
        if isinstance(item, StepFinish):
            if details is None and item.output is not None:
                details = _completed_details(record_payloads, redact is not None, item.output)
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
    if redact is not None:
        for log_row in logs:
            log_row["d"] = redacted_details(redact, str(log_row["t"]), log_row["d"])
    return dumps(logs), dumps(steps)


class Ledger:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch: int = 500,
        linger_s: float = 0.0,
        redact: Redactor | None = None,
        record_payloads: str = "full",
    ) -> None:
        if record_payloads not in RECORD_PAYLOADS:
            raise ValueError(
                f"record_payloads must be one of {', '.join(RECORD_PAYLOADS)}, got {record_payloads!r}"
            )
        self._pool = pool
        self.redact = redact
        self.record_payloads = record_payloads
        """``TRACKS_REDACT``: what payloads in ``processing_logs`` and dead letters keep (None: all)."""
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

    async def store_definitions(self, definitions: Iterable[dict[str, Any] | None]) -> None:
        """Store each workflow definition once, ahead of the claims that reference it: the claim
        that opens a run then finds its definition there instead of inserting it (two batches
        storing the same new definition would wait for each other)."""
        texts = sorted({dumps(d) for d in definitions if d is not None})
        if texts:
            await self._pool.execute(
                "INSERT INTO workflow_definitions (id, definition) "
                "SELECT DISTINCT md5(d::text)::uuid, d "
                "FROM (SELECT t::jsonb AS d FROM unnest($1::text[]) t) s ORDER BY 1 "
                "ON CONFLICT (id) DO NOTHING",
                texts,
            )

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
        """One statement may not claim the same step twice, so a batch holding several messages for
        one step (a fan-in's upstreams, redelivered together after an outage) is claimed in rounds:
        the first message of each step, then the second, each round seeing what the one before
        decided. Every message gets its own verdict: answering the later ones "duplicate" unread
        would ack the step's completing message without re-announcing its output (a lost run)."""
        rounds: list[list[Claim]] = []
        depth: dict[tuple[str, str], int] = {}
        for c in claims:
            key = (c.correlation_id, c.track)
            n = depth.get(key, 0)
            depth[key] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(c)
        verdicts: dict[int, ClaimResult] = {}
        async with self._pool.acquire() as conn:
            for batch in rounds:
                rows = await conn.fetch(CLAIM_SQL, *claim_params(batch, self.redact, self.record_payloads))
                by_key = {(r["cid"], r["track"]): r for r in rows}
                for c in batch:
                    verdicts[id(c)] = _verdict(by_key[(c.correlation_id, c.track)])
        return [verdicts[id(c)] for c in claims]

    async def _write_batch(self, items: Sequence[LogRow | StepFinish]) -> list[Written]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(WRITE_SQL, *write_params(items, self.redact, self.record_payloads))
        applied: set[tuple[str, str]] = set()
        completed: dict[str, str] = {}  # correlation ID -> workflow of the run this batch completed
        for r in rows:
            if r["track_id"] is None:
                completed[r["correlation_id"]] = r["completed_run"]
            else:
                applied.add((r["correlation_id"], r["track_id"]))
        return [_written(item, applied, completed) for item in items]
