"""``tracks dev up | down | status | stop | start``: the embedded nats-server(s) and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import asdict

import click

from tracks.cli._common import UserError, get_settings
from tracks.embedded import EmbeddedStack, NatsCluster, stream_leader

__all__ = ["dev"]


@click.group()
def dev() -> None:
    """Run the embedded servers (used when TRACKS_NATS_URL / TRACKS_DATABASE_URL are unset)."""


@dev.command()
@click.option(
    "--cluster",
    "size",
    type=click.IntRange(min=3, max=5),
    default=None,
    help="Run this many nats-servers (3 to 5) as one JetStream cluster instead of one.",
)
def up(size: int | None) -> None:
    """Start nats-server and PostgreSQL under the data dir, or reuse running ones.

    Prints the settings to export; with a cluster also TRACKS_STREAM_REPLICAS.
    """
    stack = EmbeddedStack(get_settings().data_dir)
    try:
        nats_url, database_url = stack.up(cluster=size or 0)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        raise UserError(f"could not start the embedded servers: {exc}") from None
    click.echo(f"TRACKS_NATS_URL={nats_url}")
    click.echo(f"TRACKS_DATABASE_URL={database_url}")
    if (cluster := stack.cluster) is not None:
        click.echo(f"TRACKS_STREAM_REPLICAS={cluster.size}")


@dev.command()
def down() -> None:
    """Stop the embedded servers; their data stays in the data dir."""
    stopped = EmbeddedStack(get_settings().data_dir).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dev.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per server (and cluster node).")
def status(as_json: bool) -> None:
    """Say what runs, with its pid and URL; for a cluster, each node and which leads TRACKS."""
    stack = EmbeddedStack(get_settings().data_dir)
    cluster = stack.cluster
    servers = [s for s in stack.status() if cluster is None or s.name != "nats"]
    for server in servers:
        if as_json:
            click.echo(
                json.dumps(
                    {"name": server.name, "running": server.running, "pid": server.pid, "url": server.url}
                )
            )
        else:
            state = f"running pid={server.pid} {server.url}" if server.running else "stopped"
            click.echo(f"{server.name:9} {state}")
    if cluster is None:
        return
    running = [n.url for n in cluster.status() if n.running]
    leader = asyncio.run(stream_leader(running)) if running else None
    for node in cluster.status(leader):
        if as_json:
            click.echo(json.dumps({**asdict(node), "cluster": cluster.name}))
        else:
            state = f"running pid={node.pid} {node.url}" if node.running else f"stopped (port {node.port})"
            click.echo(f"{node.name:9} {state}{'  leads TRACKS' if node.leader else ''}")


def _cluster() -> NatsCluster:
    cluster = EmbeddedStack(get_settings().data_dir).cluster
    if cluster is None:
        raise UserError("no cluster under the data dir: start one with `tracks dev up --cluster 3`")
    return cluster


@dev.command()
@click.argument("node")
def stop(node: str) -> None:
    """Stop one cluster node (NODE: its name, e.g. tracks-2, or its number), to try failover."""
    cluster = _cluster()
    try:
        was_running = cluster.stop_node(node)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    click.echo(f"stopped {cluster.node(node).server_name}" if was_running else f"{node} was not running")


@dev.command()
@click.argument("node")
def start(node: str) -> None:
    """Start one stopped cluster node again, on its ports and store."""
    cluster = _cluster()
    try:
        server = cluster.start_node(node, daemon=True)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        raise UserError(f"could not start {node}: {exc}") from None
    click.echo(f"started {server.server_name} pid={server.pid} {server.url}")
