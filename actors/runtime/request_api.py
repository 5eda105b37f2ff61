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

from actors.ledger.cancel import cancel
from actors.ledger.execution_chain import execution_chain
from actors.ledger.progress import ProgressError, proceed, progress, resume
from actors.track import Track
from actors.workflow import Workflow
from foundation.jetstream.publisher import EventPublisher
from subjects import check_token, headers, names

__all__ = ["PREFIX", "ApiError", "ApiService", "Endpoint", "call", "workflows_of"]

log = logging.getLogger(__name__)

PREFIX = names.API_PREFIX
ECHO_CHARS = 200
"""At most this much of a request's own text is quoted back in an error."""
ERROR_CHARS = 1000
"""Every error description (a response header) is cut to this length."""
_HEADROOM = 1024
"""Room kept under ``max_payload`` for a reply's headers (the server counts them too)."""
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
            "cancel": self.cancel,
        }
        """Name → handler; each answers on ``tracksapi.<name>``. Add entries before :meth:`start`."""

    async def start(self) -> None:
        self._service = await add_service(
            self._nc, name="tracks", version=self._version, description="tracks: run chains and dependencies"
        )
        for name, handler in self.endpoints.items():
            await self._service.add_endpoint(
                name=name, subject=names.api(name), handler=_wrap(self._nc, name, handler)
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
        cid = _correlation_id(body)
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
        cid = _correlation_id(body)
        name = _token(body, "track", "a track name")
        track = self._tracks.get(name)
        if track is None:
            known = _cut(", ".join(sorted(self._tracks)) or "none", ECHO_CHARS)
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
        return (await _progress_call(progress(self._pool, _correlation_id(body)))).as_wire()

    async def proceed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Release the manual gate a run waits at."""
        done = await _progress_call(proceed(self._pool, self._publisher, _correlation_id(body)))
        return {"correlationId": done.correlation_id, "releasedPhase": done.phase, "started": done.tracks}

    async def resume(self, body: dict[str, Any]) -> dict[str, Any]:
        """Continue a failed or timed-out run from its last successful steps."""
        done = await _progress_call(resume(self._pool, self._publisher, _correlation_id(body)))
        return {"correlationId": done.correlation_id, "reactivated": done.tracks}

    async def cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        """Cancel a running run (``{"correlationId": ..., "reason": ...}``); 409 when it has finished."""
        cid = _correlation_id(body)
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ApiError(400, f"reason must be a string, got {_json_type(reason)}")
        return (await _progress_call(cancel(self._pool, self._publisher, cid, reason))).as_wire()


async def _progress_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except ProgressError as exc:
        raise ApiError(404 if str(exc).startswith("no workflow run") else 409, str(exc)) from None


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        got = "missing" if value is None else f"got {_echo(value)}"
        raise ApiError(400, f"{key} is required (a non-empty string; {got})")
    return value


def _token(body: dict[str, Any], key: str, what: str) -> str:
    """A field that becomes a subject token (a correlation ID, a track name): :func:`check_token`'s rule."""
    value = _required(body, key)
    try:
        return check_token(value, what)
    except ValueError:  # its message quotes the whole value: say it again, bounded
        raise ApiError(
            400, f"{key} {_echo(value)} must be 1-128 characters of letters, digits, '_' or '-'"
        ) from None


def _correlation_id(body: dict[str, Any]) -> str:
    return _token(body, "correlationId", "correlation ID")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _echo(value: object) -> str:
    """A request's own value quoted in an error: ``repr`` (NUL, control characters and lone
    surrogates escaped), at most :data:`ECHO_CHARS` characters of it."""
    if isinstance(value, str):
        return repr(_cut(value, ECHO_CHARS))
    return _cut(repr(value), ECHO_CHARS)


def _header_safe(text: str) -> str:
    """An error description as a header value: one bounded line that encodes as UTF-8."""
    flat = " ".join(text.split())
    return _cut(flat, ERROR_CHARS).encode("utf-8", "backslashreplace").decode("utf-8")


def _request_body(data: bytes) -> dict[str, Any]:
    """The request as a JSON object; anything else is a bad request (400), never a failure."""
    if not data:
        return {}
    try:
        body = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the request is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the request is not JSON: {exc.msg} (at {exc.pos})") from None
    except RecursionError:
        raise ApiError(400, "the request is not JSON this service reads: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request must be a JSON object, got {_json_type(body)}")
    return body


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _wrap(nc: NATS, name: str, handler: Endpoint) -> Callable[[Request], Awaitable[None]]:
    """JSON in, JSON out; an :class:`ApiError` or a failure becomes a micro error reply.

    Bad input is a 400 with a short reason. Every error description is one line of at most
    :data:`ERROR_CHARS` characters, and a reply too large for the server's ``max_payload`` is
    refused (413) rather than sent, so no answer can break the connection.
    """

    async def handle(request: Request) -> None:
        try:
            reply = await handler(_request_body(request.data))
            data = json.dumps(reply, default=str).encode()
            if len(data) > nc.max_payload - _HEADROOM:
                raise ApiError(
                    413, f"the reply ({len(data)} bytes) exceeds the server's max_payload; ask for less"
                )
        except ApiError as exc:
            raise ServiceError(str(exc.code), _header_safe(exc.description)) from None
        except Exception as exc:
            log.exception("%s failed", names.api(name))
            raise ServiceError("500", _header_safe(f"{type(exc).__name__}: {exc}")) from None
        await request.respond(data)

    return handle


async def call(nc: NATS, endpoint: str, body: dict[str, Any], *, wait_s: float = 5.0) -> dict[str, Any]:
    """Request ``tracksapi.<endpoint>``; an error reply raises :class:`ApiError`."""
    msg = await nc.request(names.api(endpoint), json.dumps(body).encode(), timeout=wait_s)
    hdrs = headers.plain(msg.headers)
    if ERROR_HEADER in hdrs:
        code = hdrs.get(ERROR_CODE_HEADER, "500")
        raise ApiError(int(code) if code.isdigit() else 500, hdrs[ERROR_HEADER])
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
