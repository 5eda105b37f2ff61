"""``tracks console``: the web console (:mod:`tracks.console`) on the settings of every command.

It finds the servers as the read commands do (configured, or the embedded default that
``tracks dev up`` or ``make demo`` left running; never started here) within the connect timeout,
and serves until Ctrl-C. Loopback only unless ``TRACKS_CONSOLE_TOKEN`` is set.
"""

from __future__ import annotations

import logging
import os

import click
import uvicorn

from tracks.cli._common import UserError, async_command, get_settings
from tracks.cli._tracing import cli_tracing
from tracks.console import create_app, open_console
from tracks.console.security import is_loopback

__all__ = ["console"]

TOKEN_ENV = "TRACKS_CONSOLE_TOKEN"
JAEGER_ENV = "TRACKS_JAEGER_URL"


def metrics_sources(urls: tuple[str, ...]) -> list[str]:
    """``--metrics-url`` as given, else the local actor's ``TRACKS_HTTP_PORT`` as ``tracks top`` reads it."""
    if urls:
        return list(urls)
    port = os.environ.get("TRACKS_HTTP_PORT", "").strip()
    return [f"http://127.0.0.1:{port}/metrics"] if port else []


@click.command("console")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help=f"Address to bind (beyond loopback: {TOKEN_ENV} required).",
)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on."
)
@click.option(
    "--metrics-url",
    "metrics_urls",
    multiple=True,
    metavar="URL",
    help="An actor's /metrics for the Tracks page (repeatable). Default: http://127.0.0.1:$TRACKS_HTTP_PORT/metrics.",
)
@async_command
async def console(host: str, port: int, metrics_urls: tuple[str, ...]) -> None:
    """Serve the web console: runs (filter, follow, proceed, resume, cancel), dead letters (show,
    replay, purge), schedules (next fire times, enable/disable, history) and per-track metrics,
    with the same data as JSON under /api/. Ctrl-C stops it.

    TRACKS_CONSOLE_TOKEN: asked as a bearer token or basic-auth password (required beyond
    loopback). TRACKS_JAEGER_URL (e.g. http://localhost:16686): each run links to its trace.
    """
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if not is_loopback(host) and token is None:
        raise UserError(
            f"refusing to serve on {host} without {TOKEN_ENV}: set it (clients send it as a bearer "
            "token or basic-auth password) or bind to 127.0.0.1"
        )
    settings = get_settings()
    cli_tracing(settings)  # proceed and resume continue the run's trace, as the CLI's do
    jaeger = os.environ.get(JAEGER_ENV, "").strip() or None
    async with open_console(
        settings, metrics_urls=metrics_sources(metrics_urls), jaeger_url=jaeger, token=token
    ) as state:
        config = uvicorn.Config(
            create_app(state),
            host=host,
            port=port,
            log_level=logging.getLevelName(min(logging.getLogger().level, logging.WARNING)).lower(),
            access_log=logging.getLogger().isEnabledFor(logging.INFO),
            log_config=None,  # the command's own logging (TRACKS_LOG_FORMAT)
            lifespan="off",
        )
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"tracks console on http://{shown}:{port}/ (Ctrl-C stops it)", err=True)
        await server.serve()
