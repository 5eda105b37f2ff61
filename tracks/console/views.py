"""The data of each page, built once for both the HTML page and its ``/api/`` twin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import click
from nats.js.errors import NotFoundError
from starlette.datastructures import QueryParams

from actors.failures import dlq_ops
from actors.ledger.listing import MAX_LIMIT, RunDetail, RunSummary, StepDetail, iso, list_runs, show_run
from scheduler.executions import ExecutionStore
from scheduler.schedules import InvalidSchedule, ScheduleStore, UnknownSchedule
from scheduler.targets import consuming_tracks
from subjects import DLQ_STREAM, check_token
from tracks.cli.operations.dlq import _json_or_text
from tracks.cli.operations.dlq import _summary as letter_summary
from tracks.cli.runs_admin import STATUSES, parse_since
from tracks.cli.schedule import _execution_wire, _schedule_wire
from tracks.cli.top import rows as track_rows
from tracks.console.data import counts, jaeger_link, payloads, shown
from tracks.console.state import Console

__all__ = ["BadRequest", "RunFilters", "run_view", "runs_view"]


class BadRequest(ValueError):
    """A filter or parameter that cannot be used: the page says why (400)."""


@dataclass(frozen=True)
class RunFilters:
    status: str | None
    workflow: str | None
    since_text: str | None
    since: datetime | None
    limit: int
    before: tuple[datetime, str] | None = None
    """The last run of the previous page (``before`` = its start, ``before_id`` = its ID): keyset pages."""

    @classmethod
    def of(cls, query: QueryParams) -> RunFilters:
        status = (query.get("status") or "").strip().lower() or None
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status {status!r} is not one of {', '.join(STATUSES)}")
        since_text = (query.get("since") or "").strip() or None
        try:
            since = parse_since(since_text) if since_text else None
        except click.ClickException as exc:
            raise BadRequest(exc.message.replace("--since", "since")) from None
        workflow = (query.get("workflow") or "").strip() or None
        return cls(status, workflow, since_text, since, _limit(query), _before(query))

    def older(self, last: RunSummary) -> str:
        """The next (older) page after ``last``: its start to the microsecond, so none is skipped."""
        keep = {"status": self.status, "workflow": self.workflow, "since": self.since_text}
        query = {k: v for k, v in keep.items() if v} | {"limit": str(self.limit)}
        return urlencode(query | {"before": last.started_at.isoformat(), "before_id": last.correlation_id})


def _before(query: QueryParams) -> tuple[datetime, str] | None:
    at, cid = query.get("before"), query.get("before_id")
    if not at and not cid:
        return None
    try:
        moment = datetime.fromisoformat(at or "")
    except ValueError:
        raise BadRequest("before must be an ISO-8601 time (with before_id: the last run of a page)") from None
    if not cid:
        raise BadRequest("before goes with before_id (the last run of the previous page)")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), cid


def _limit(query: QueryParams, default: int = 100, most: int = MAX_LIMIT) -> int:
    text = query.get("limit") or str(default)
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise BadRequest(f"limit must be a whole number from 1 to {most}")
    return int(text)


async def runs_view(console: Console, query: QueryParams) -> dict[str, Any]:
    f = RunFilters.of(query)
    found = await list_runs(
        console.pool, status=f.status, workflow=f.workflow, since=f.since, limit=f.limit, before=f.before
    )
    return {
        "filters": f,
        "counts": await counts(console.pool, workflow=f.workflow, since=f.since),
        "runs": found,
        "statuses": STATUSES,
        "older": f.older(found[-1]) if len(found) == f.limit else None,
    }


def _timeline(detail: RunDetail) -> list[dict[str, Any]]:
    """Each phase with its steps, placed on the run's time span (offset and width in percent)."""
    start = detail.run.started_at
    ends = [s.finished_at or datetime.now(UTC) for s in detail.steps]
    end = max([detail.run.finished_at or datetime.now(UTC), *ends])
    span = max((end - start).total_seconds(), 1e-3)
    steps = {s.track: s for s in detail.steps}

    def bar(s: StepDetail) -> dict[str, Any]:
        finish = s.finished_at or datetime.now(UTC)
        duration = (finish - s.started_at).total_seconds()
        return {
            "step": s,
            "startedAt": iso(s.started_at),
            "durationS": round(duration, 3) if s.finished_at else None,
            "offset": round(100 * max(0.0, (s.started_at - start).total_seconds()) / span, 2),
            "width": round(max(0.5, 100 * duration / span), 2),
        }

    phases = []
    for phase in detail.phases:
        tracks = [(t, bar(steps.pop(t)) if t in steps else None) for t in phase["tracks"]]
        phases.append({**phase, "rows": tracks})
    if steps:  # steps outside the stored definition (a track triggered on its own)
        phases.append(
            {
                "name": "(other)",
                "manual": False,
                "completed": False,
                "rows": [(t, bar(s)) for t, s in steps.items()],
            }
        )
    return phases


async def run_view(console: Console, cid: str) -> dict[str, Any] | None:
    detail = await show_run(console.pool, cid)
    if detail is None:
        return None
    stored = await payloads(console.pool, cid)
    status = detail.run.status
    return {
        "detail": detail,
        "timeline": _timeline(detail),
        "input": shown(stored.input),
        "result": shown(stored.result) if stored.result is not None else None,
        "outputs": {track: shown(value) for track, value in sorted(stored.outputs.items())},
        "traceId": stored.trace_id,
        "jaeger": jaeger_link(console.jaeger_url, stored.trace_id),
        "can": {
            "proceed": bool(detail.progress and detail.progress.can_proceed),
            "resume": status in ("failed", "timed_out"),
            "cancel": status == "running",
        },
    }


def checked_track(text: str | None) -> str | None:
    try:
        return check_token(text.strip(), "track name") if text and text.strip() else None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def dlq_view(console: Console, query: QueryParams) -> dict[str, Any]:
    track = checked_track(query.get("track"))
    limit = _limit(query, 100, 10_000)
    js = console.nc.jetstream()
    found = [letter async for letter in dlq_ops.letters(js, track, limit)]
    return {"track": track, "letters": found, "total": await dlq_ops.count(js, track), "stream": DLQ_STREAM}


async def letter_view(console: Console, seq: int) -> dict[str, Any] | None:
    js = console.nc.jetstream()
    try:
        letter = await dlq_ops.read(js, seq)
    except dlq_ops.UnknownDeadLetter:
        return None
    body = await dlq_ops.original_body(js, letter)
    return {
        "letter": letter,
        "summary": letter_summary(letter),
        "headers": sorted(letter.headers.items()),
        "body": shown(_json_or_text(body)),
        "bodyValue": _json_or_text(body),
    }


async def _consuming(console: Console) -> set[str] | None:
    """The tracks some durable consumer serves, as ``tracks schedule ls`` asks; ``None`` when
    NATS cannot tell (no TRACKS stream yet: nothing consumes anything)."""
    try:
        return await consuming_tracks(console.nc.jetstream(timeout=console.settings.connect_timeout_s))
    except NotFoundError:
        return set()


async def schedules_view(console: Console) -> dict[str, Any]:
    invalid: list[str] = []
    found = await ScheduleStore(console.pool).list_all(on_invalid=lambda exc: invalid.append(str(exc)))
    now, tracks = datetime.now(UTC), await _consuming(console) if found else set()
    return {
        "schedules": [
            {
                **_schedule_wire(s, now, tracks),
                "next": [iso(t) for t in s.next_fire_times(now, 3)] if s.enabled else [],
            }
            for s in found
        ],
        "invalid": invalid,
    }


async def schedule_view(console: Console, name: str, query: QueryParams) -> dict[str, Any] | None:
    try:
        s = await ScheduleStore(console.pool).get(name)
    except UnknownSchedule:
        return None
    except InvalidSchedule as exc:
        raise BadRequest(str(exc)) from None
    history = await ExecutionStore(console.pool, instance="console").history(s.id, _limit(query, 50, 10_000))
    now = datetime.now(UTC)
    return {
        "schedule": {
            **_schedule_wire(s, now, await _consuming(console)),
            "next": [iso(t) for t in s.next_fire_times(now, 5)] if s.enabled else [],
        },
        "history": [_execution_wire(r) for r in history],
    }


async def tracks_view(console: Console) -> dict[str, Any]:
    if not console.metrics_urls:
        return {
            "error": "no metrics source: start the console with --metrics-url URL (repeatable) "
            "or set TRACKS_HTTP_PORT as for `tracks top`",
            "tracks": [],
            "dlq": None,
            "sources": [],
        }
    try:
        before, after = await console.scrape()
    except click.ClickException as exc:
        return {
            "error": exc.format_message(),
            "tracks": [],
            "dlq": None,
            "sources": list(console.metrics_urls),
        }
    return {
        "error": None,
        "tracks": track_rows(before, after),
        "dlq": None if after.dlq is None else int(after.dlq),
        "sources": list(console.metrics_urls),
    }
