"""The console's routes: pages (``/``, ``/runs/<cid>``, ``/dlq``, ``/schedules``, ``/tracks``),
their JSON twins under ``/api/``, and the POST actions (:mod:`tracks.console.actions`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import nats.errors
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from actors.ledger.listing import iso
from foundation.redact import mask_secrets
from tracks.cli.operations.dlq import _summary as summary
from tracks.console import actions
from tracks.console.security import SecurityMiddleware, csrf_token
from tracks.console.state import Console
from tracks.console.views import (
    BadRequest,
    checked_track,
    dlq_view,
    letter_view,
    run_view,
    runs_view,
    schedule_view,
    schedules_view,
    tracks_view,
)

__all__ = ["create_app"]

_UNREACHABLE = (
    ConnectionError,
    OSError,
    TimeoutError,
    nats.errors.Error,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
)

_HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True))
_env.filters["iso"] = iso
_env.filters["q"] = lambda text: quote(str(text), safe="")


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


_env.filters["ms"] = _ms


def create_app(console: Console) -> Starlette:
    """The console app over open connections (:func:`tracks.console.open_console`)."""

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        page = _env.get_template(name).render(
            request=request,
            csrf=csrf_token(request),
            msg=request.query_params.get("msg"),
            msg_kind=request.query_params.get("kind", "ok"),
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def renderer(request: Request) -> Any:
        return lambda name, context, status: render(request, name, context, status)

    def problem(request: Request, status: int, message: str, api: bool) -> Response:
        if api:
            return JSONResponse({"error": message}, status_code=status)
        title = {404: "Not found", 400: "Bad request"}.get(status, "Unavailable")
        return render(request, "message.html", {"title": title, "message": message}, status)

    async def runs_page(request: Request) -> Response:
        try:
            return render(request, "runs.html", await runs_view(console, request.query_params))
        except BadRequest as exc:
            return problem(request, 400, str(exc), False)

    async def runs_api(request: Request) -> Response:
        try:
            view = await runs_view(console, request.query_params)
        except BadRequest as exc:
            return problem(request, 400, str(exc), True)
        runs = [r.as_wire() for r in view["runs"]]
        older = f"/api/runs?{view['older']}" if view["older"] else None
        return JSONResponse({"counts": view["counts"], "runs": runs, "older": older})

    async def run_page(request: Request) -> Response:
        cid = request.path_params["cid"]
        view = await run_view(console, cid)
        if view is None:
            return problem(request, 404, f"no workflow run with correlation ID {cid}", False)
        return render(request, "run.html", view)

    async def run_api(request: Request) -> Response:
        cid = request.path_params["cid"]
        view = await run_view(console, cid)
        if view is None:
            return problem(request, 404, f"no workflow run with correlation ID {cid}", True)
        wire = view["detail"].as_wire()
        wire.update(
            {
                "input": view["input"],
                "result": view["result"],
                "outputs": view["outputs"],
                "traceId": view["traceId"],
                "jaegerUrl": view["jaeger"],
                "actions": view["can"],
            }
        )
        return JSONResponse(wire)

    async def dlq_page(request: Request) -> Response:
        try:
            return render(request, "dlq.html", await dlq_view(console, request.query_params))
        except BadRequest as exc:
            return problem(request, 400, str(exc), False)

    async def dlq_api(request: Request) -> Response:
        try:
            view = await dlq_view(console, request.query_params)
        except BadRequest as exc:
            return problem(request, 400, str(exc), True)
        return JSONResponse({"total": view["total"], "letters": [summary(x) for x in view["letters"]]})

    async def letter_page(request: Request) -> Response:
        seq = request.path_params["seq"]
        view = await letter_view(console, seq)
        if view is None:
            return problem(request, 404, f"no dead letter with sequence {seq}", False)
        return render(request, "letter.html", view)

    async def letter_api(request: Request) -> Response:
        seq = request.path_params["seq"]
        view = await letter_view(console, seq)
        if view is None:
            return problem(request, 404, f"no dead letter with sequence {seq}", True)
        letter = view["letter"]
        return JSONResponse(
            {
                **view["summary"],
                "storedOn": letter.subject,
                "headers": dict(view["headers"]),
                "body": view["bodyValue"],
                "traceback": letter.traceback,
            }
        )

    async def schedules_page(request: Request) -> Response:
        return render(request, "schedules.html", await schedules_view(console))

    async def schedules_api(request: Request) -> Response:
        return JSONResponse(await schedules_view(console))

    async def schedule_page(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            view = await schedule_view(console, name, request.query_params)
        except BadRequest as exc:
            return problem(request, 400, str(exc), False)
        if view is None:
            return problem(request, 404, f"no schedule named {name}", False)
        return render(request, "schedule.html", view)

    async def schedule_api(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            view = await schedule_view(console, name, request.query_params)
        except BadRequest as exc:
            return problem(request, 400, str(exc), True)
        if view is None:
            return problem(request, 404, f"no schedule named {name}", True)
        return JSONResponse(view)

    async def tracks_page(request: Request) -> Response:
        return render(request, "tracks.html", await tracks_view(console))

    async def tracks_api(request: Request) -> Response:
        view = await tracks_view(console)
        return JSONResponse({**view, "tracks": [asdict(r) for r in view["tracks"]]})

    async def run_post(request: Request) -> Response:
        kind, cid = request.path_params["action"], request.path_params["cid"]
        if kind not in ("proceed", "resume", "cancel"):
            return problem(request, 404, f"no action {kind}", False)
        return await actions.act(request, console, actions.run_action(kind, cid), renderer(request))

    async def replay_post(request: Request) -> Response:
        seq = request.path_params["seq"]
        return await actions.act(request, console, actions.replay_action(seq), renderer(request))

    async def purge_post(request: Request) -> Response:
        form = await request.form()
        try:
            track = checked_track(str(form.get("track") or ""))
        except BadRequest as exc:
            return problem(request, 400, str(exc), False)
        return await actions.act(request, console, actions.purge_action(track), renderer(request))

    async def schedule_post(request: Request) -> Response:
        name, kind = request.path_params["name"], request.path_params["action"]
        if kind not in ("enable", "disable"):
            return problem(request, 404, f"no action {kind}", False)
        action = actions.schedule_action(name, kind == "enable")
        return await actions.act(request, console, action, renderer(request))

    async def failed(request: Request, exc: Exception) -> Response:
        """A server that stopped answering (or anything else unexpected): one line, no traceback
        in the page (the console's log has it), secrets masked."""
        unreachable = isinstance(exc, _UNREACHABLE)
        what = "a server does not answer" if unreachable else "the console failed"
        message = mask_secrets(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "))
        status = 503 if unreachable else 500
        return problem(request, status, message, request.url.path.startswith("/api/"))

    routes = [
        Route("/", runs_page),
        Route("/runs/{cid}", run_page),
        Route("/runs/{cid}/{action}", run_post, methods=["POST"]),
        Route("/dlq", dlq_page),
        Route("/dlq/purge", purge_post, methods=["POST"]),
        Route("/dlq/{seq:int}", letter_page),
        Route("/dlq/{seq:int}/replay", replay_post, methods=["POST"]),
        Route("/schedules", schedules_page),
        Route("/schedules/{name}", schedule_page),
        Route("/schedules/{name}/{action}", schedule_post, methods=["POST"]),
        Route("/tracks", tracks_page),
        Route("/api/runs", runs_api),
        Route("/api/runs/{cid}", run_api),
        Route("/api/dlq", dlq_api),
        Route("/api/dlq/{seq:int}", letter_api),
        Route("/api/schedules", schedules_api),
        Route("/api/schedules/{name}", schedule_api),
        Route("/api/tracks", tracks_api),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, token=console.token)],
        exception_handlers={Exception: failed},
    )
