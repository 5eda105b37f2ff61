"""The request API: a ``nats.micro`` service named ``tracks`` answering on ``tracksapi.<endpoint>``.

Any process that can reach NATS can ask a running actor about a run (``nats req
tracksapi.chain '{"correlationId": "..."}'``), without database credentials. Subjects are
under ``tracksapi.``, not ``tracks.``: the TRACKS stream captures ``tracks.>`` and would
answer every request with a PubAck. Replicas share a queue group, so one of them answers.

An endpoint is an ``async (request body) -> reply body`` function registered by name in
:attr:`ApiService.endpoints`; bad requests raise :class:`ApiError`, which becomes a micro
error reply (headers ``Nats-Service-Error`` / ``Nats-Service-Error-Code``). :func:`call` is the
client side: it turns such a reply back into :class:`ApiError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import asyncpg
from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER, Request, ServiceError
from nats.micro.service import Service

from .chain import execution_chain
from .progress import ProgressError, proceed, progress, resume
from .publisher import EventPublisher
from .track import Track
from .workflow import Workflow

__all__ = ["PREFIX", "ApiError", "ApiService", "Endpoint", "call", "workflows_of"]

log = logging.getLogger(__name__)

PREFIX = "tracksapi"
Endpoint = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
T = TypeVar("T")


class ApiError(Exception):
    """A request the API refused (``code`` as in HTTP: 400 bad request, 404 unknown, 500 failure)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class ApiService:
    """The ``tracks`` micro service for one process; it knows the workflows of its tracks."""

    def __init__(
        self, nc: NATS, pool: asyncpg.Pool, workflows: Sequence[Workflow], *, version: str = "1.0.0"
    ) -> None:
        self._nc = nc
        self._pool = pool
        self._version = version
        self.workflows = {wf.name: wf for wf in workflows}
        """What endpoints may answer about (phases, timeouts, the graph), by workflow name."""
        self._tracks: dict[str, Track] = {t.name: t for wf in workflows for t in wf}
        self._service: Service | None = None
        self._publisher = EventPublisher(nc.jetstream())
        self.endpoints: dict[str, Endpoint] = {
            "chain": self.chain,
            "deps": self.deps,
            "status": self.status,
            "proceed": self.proceed,
            "resume": self.resume,
        }
        """Name → handler; each answers on ``tracksapi.<name>``. Add entries before :meth:`start`."""

    async def start(self) -> None:
        self._service = await add_service(
            self._nc, name="tracks", version=self._version, description="tracks: run chains and dependencies"
        )
        for name, handler in self.endpoints.items():
            await self._service.add_endpoint(
                name=name, subject=f"{PREFIX}.{name}", handler=_wrap(name, handler)
            )
        await self._nc.flush()

    async def stop(self) -> None:
        """Stop answering; never holds up a shutdown (the connection may already be gone)."""
        service, self._service = self._service, None
        if service is None or not self._nc.is_connected:  # its subscriptions end with the connection
            return
        try:
            async with asyncio.timeout(2.0):  # stop() flushes once per subscription
                await service.stop()
        except Exception as exc:
            log.warning("stopping the tracks API service failed: %s", exc)

    # --- endpoints -----------------------------------------------------------------------

    async def chain(self, body: dict[str, Any]) -> dict[str, Any]:
        """Every event of a run in order, and each step's state with its output size."""
        cid = _required(body, "correlationId")
        events = await execution_chain(self._pool, cid)
        steps = await self._pool.fetch(
            """SELECT track_id, status, attempts, started_at, finished_at, error,
                      octet_length(output::text) AS output_bytes
               FROM track_steps WHERE correlation_id = $1 ORDER BY started_at, track_id""",
            cid,
        )
        if not events and not steps:
            raise ApiError(404, f"no records for correlation ID {cid}")
        return {
            "correlationId": cid,
            "events": [
                {
                    "time": e.occurred_at.isoformat(),
                    "track": e.track,
                    "eventType": e.event_type,
                    "attempt": e.attempt,
                    "durationMs": e.duration_ms,
                    "error": e.error,
                }
                for e in events
            ],
            "steps": [
                {
                    "track": s["track_id"],
                    "status": s["status"],
                    "attempts": s["attempts"],
                    "startedAt": s["started_at"].isoformat(),
                    "finishedAt": s["finished_at"].isoformat() if s["finished_at"] else None,
                    "error": s["error"],
                    "outputBytes": s["output_bytes"],
                }
                for s in steps
            ],
        }

    async def deps(self, body: dict[str, Any]) -> dict[str, Any]:
        """Which of a track's upstreams completed for a run, and whether that is all of them."""
        cid = _required(body, "correlationId")
        name = _required(body, "track")
        track = self._tracks.get(name)
        if track is None:
            known = ", ".join(sorted(self._tracks)) or "none"
            raise ApiError(404, f"unknown track {name!r} (this service knows: {known})")
        rows = await self._pool.fetch(
            "SELECT track_id FROM track_steps WHERE correlation_id = $1 AND track_id = ANY($2) "
            "AND status = 'completed'",
            cid,
            list(track.after),
        )
        done = {r["track_id"] for r in rows}
        completed = [u for u in track.after if u in done]
        return {
            "track": name,
            "dependencies": list(track.after),
            "completed": completed,
            "met": len(completed) == len(track.after),
        }

    async def status(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{currentPhase, currentStep, completedPhases, canProceed, requiresManualTrigger}`` of a run."""
        return (await _progress_call(progress(self._pool, _required(body, "correlationId")))).as_wire()

    async def proceed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Release the manual gate a run waits at."""
        done = await _progress_call(proceed(self._pool, self._publisher, _required(body, "correlationId")))
        return {"correlationId": done.correlation_id, "releasedPhase": done.phase, "started": done.tracks}

    async def resume(self, body: dict[str, Any]) -> dict[str, Any]:
        """Continue a failed or timed-out run from its last successful steps."""
        done = await _progress_call(resume(self._pool, self._publisher, _required(body, "correlationId")))
        return {"correlationId": done.correlation_id, "reactivated": done.tracks}


async def _progress_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except ProgressError as exc:
        raise ApiError(404 if str(exc).startswith("no workflow run") else 409, str(exc)) from None


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{key} is required (a non-empty string)")
    return value


def _wrap(name: str, handler: Endpoint) -> Callable[[Request], Awaitable[None]]:
    """JSON in, JSON out; an :class:`ApiError` or a failure becomes a micro error reply."""

    async def handle(request: Request) -> None:
        try:
            body = json.loads(request.data or b"{}")
            if not isinstance(body, dict):
                raise ApiError(400, f"the request must be a JSON object, got {type(body).__name__}")
            reply = await handler(body)
        except json.JSONDecodeError as exc:
            raise ServiceError("400", f"the request is not JSON: {exc.msg}") from None
        except ApiError as exc:
            raise ServiceError(str(exc.code), exc.description) from None
        except Exception as exc:
            log.exception("tracksapi.%s failed", name)
            raise ServiceError("500", f"{type(exc).__name__}: {exc}") from None
        await request.respond(json.dumps(reply, default=str).encode())

    return handle


async def call(nc: NATS, endpoint: str, body: dict[str, Any], *, wait_s: float = 5.0) -> dict[str, Any]:
    """Request ``tracksapi.<endpoint>``; an error reply raises :class:`ApiError`."""
    msg = await nc.request(f"{PREFIX}.{endpoint}", json.dumps(body).encode(), timeout=wait_s)
    headers = msg.headers or {}
    if ERROR_HEADER in headers:
        code = headers.get(ERROR_CODE_HEADER, "500")
        raise ApiError(int(code) if code.isdigit() else 500, headers[ERROR_HEADER])
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


def workflows_of(tracks: Iterable[Track]) -> list[Workflow]:
    """The workflows that declared these tracks (each once), for a runtime given only tracks.

    A track declared by a :class:`Workflow` carries it as ``graph``; a free-standing track
    becomes a one-track workflow of its own so its dependencies can still be answered.
    """
    found: dict[int, Workflow] = {}
    for track in tracks:
        wf = track.graph
        if wf is None:
            wf = Workflow(track.workflow or track.name)
            wf.add(track)
        found.setdefault(id(wf), wf)
    return list(found.values())
