"""``tracks dev up | down | status``: the embedded nats-server and PostgreSQL."""

from __future__ import annotations

import subprocess

import click

from tracks.cli._common import UserError, get_settings
from tracks.embedded import EmbeddedStack

__all__ = ["dev"]


@click.group()
def dev() -> None:
    """Run the embedded servers (used when TRACKS_NATS_URL / TRACKS_DATABASE_URL are unset)."""


@dev.command()
def up() -> None:
    """Start nats-server and PostgreSQL under the data dir, or reuse running ones."""
    stack = EmbeddedStack(get_settings().data_dir)
    try:
        nats_url, database_url = stack.up()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        raise UserError(f"could not start the embedded servers: {exc}") from None
    click.echo(f"TRACKS_NATS_URL={nats_url}")
    click.echo(f"TRACKS_DATABASE_URL={database_url}")


@dev.command()
def down() -> None:
    """Stop the embedded servers; their data stays in the data dir."""
    stopped = EmbeddedStack(get_settings().data_dir).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dev.command()
def status() -> None:
    """Say what runs, with its pid and URL."""
    for server in EmbeddedStack(get_settings().data_dir).status():
        state = f"running pid={server.pid} {server.url}" if server.running else "stopped"
        click.echo(f"{server.name:9} {state}")
