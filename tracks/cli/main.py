"""The ``tracks`` command. Each group lives in its own module and is registered here."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import click

from foundation.logs import configure_logging
from tracks.cli._common import CONNECT_TIMEOUT_KEY, EXIT_CODES
from tracks.cli.actor import actor
from tracks.cli.bench import bench
from tracks.cli.db import db
from tracks.cli.demo import demo
from tracks.cli.deploy import deploy
from tracks.cli.dev import dev
from tracks.cli.operations.alerts import alerts
from tracks.cli.operations.chain import chain
from tracks.cli.operations.console import console
from tracks.cli.operations.dlq import dlq
from tracks.cli.operations.limits import limits
from tracks.cli.operations.retention import retention
from tracks.cli.runs import proceed_cmd, resume_cmd, run_cmd, status_cmd
from tracks.cli.runs_admin import cancel_cmd, runs
from tracks.cli.schedule import schedule, scheduler
from tracks.cli.top import top
from tracks.cli.trigger import trigger
from tracks.cli.workflow import workflow

__all__ = ["cli", "main"]


def _version() -> str:
    try:
        return version("tracks")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


_EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)


@click.group(epilog=_EPILOG)
@click.version_option(_version(), "--version", prog_name="tracks", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug, with tracebacks).")
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="TRACKS_CONNECT_TIMEOUT_S",
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a command waits for each server before it exits 4 [env: TRACKS_CONNECT_TIMEOUT_S].",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, connect_timeout: float) -> None:
    """Durable track coordination and background jobs on NATS JetStream.

    Logs go to stderr (TRACKS_LOG_FORMAT=json: one JSON object per line); passwords and tokens
    in URLs are masked in every message.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    try:
        configure_logging(level)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.meta[CONNECT_TIMEOUT_KEY] = connect_timeout


cli.add_command(dev)
cli.add_command(db)
cli.add_command(actor)
cli.add_command(trigger)
cli.add_command(chain)
cli.add_command(dlq)
cli.add_command(alerts)
cli.add_command(limits)
cli.add_command(bench)
cli.add_command(demo)
cli.add_command(deploy)
for _command in (run_cmd, status_cmd, proceed_cmd, resume_cmd):
    cli.add_command(_command)
cli.add_command(schedule)
cli.add_command(scheduler)
cli.add_command(workflow)
cli.add_command(retention)
cli.add_command(top)
cli.add_command(runs)  # runs ls | show
cli.add_command(cancel_cmd)
cli.add_command(console)


def main() -> None:
    cli(prog_name="tracks")
