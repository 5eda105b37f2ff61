"""``tracks actor run MODULE[:TRACK,...] ...``: run tracks in this process until SIGTERM."""

from __future__ import annotations

import asyncio

import click

from actors import LoadError, Runtime, WorkflowError, load_tracks
from tracks.cli._common import UserError, async_command, get_settings
from tracks.endpoints import with_endpoints

__all__ = ["actor"]


@click.group()
def actor() -> None:
    """Run track actors."""


@actor.command("run")
@click.argument("targets", nargs=-1, required=True)
@async_command
async def run_cmd(targets: tuple[str, ...]) -> None:
    """Run the tracks of TARGETS (pkg.module for all its tracks, pkg.module:a,b for some).

    One track per process in production, all in one for development. SIGTERM or SIGINT stops
    fetching, lets in-flight steps finish (TRACKS_SHUTDOWN_GRACE_S) and exits 0.
    """
    try:
        tracks = load_tracks(list(targets))
    except (LoadError, WorkflowError) as exc:
        raise UserError(str(exc)) from None
    settings, endpoints = await asyncio.to_thread(with_endpoints, get_settings())
    name = "tracks-actor:" + ",".join(t.name for t in tracks)
    async with Runtime(tracks, settings=settings, name=name[:100], migrate=endpoints.embedded) as runtime:
        click.echo(f"running {', '.join(runtime.workers)} (Ctrl-C to stop)", err=True)
        await runtime.serve()
    click.echo("stopped cleanly", err=True)
