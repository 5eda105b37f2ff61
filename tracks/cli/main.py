"""The ``tracks`` command. Each group lives in its own module and is registered here."""

from __future__ import annotations

import logging
import os

import click

from tracks.cli.actor import actor
from tracks.cli.alerts import alerts
from tracks.cli.bench import bench
from tracks.cli.chain import chain
from tracks.cli.db import db
from tracks.cli.demo import demo
from tracks.cli.dev import dev
from tracks.cli.dlq import dlq
from tracks.cli.retention import retention
from tracks.cli.runs import proceed_cmd, resume_cmd, run_cmd, status_cmd
from tracks.cli.runs_admin import cancel_cmd, runs
from tracks.cli.schedule import schedule, scheduler
from tracks.cli.trigger import trigger
from tracks.cli.workflow import workflow

__all__ = ["cli", "main"]


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug, with tracebacks).")
def cli(verbose: int) -> None:
    """Durable track coordination and background jobs on NATS JetStream."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(
        level=os.environ.get("TRACKS_LOG_LEVEL", logging.getLevelName(level)),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


cli.add_command(dev)
cli.add_command(db)
cli.add_command(actor)
cli.add_command(trigger)
cli.add_command(chain)
cli.add_command(dlq)
cli.add_command(alerts)
cli.add_command(bench)
cli.add_command(demo)
for _command in (run_cmd, status_cmd, proceed_cmd, resume_cmd):
    cli.add_command(_command)
cli.add_command(schedule)
cli.add_command(scheduler)
cli.add_command(workflow)
cli.add_command(retention)
cli.add_command(runs)  # runs ls | show
cli.add_command(cancel_cmd)


def main() -> None:
    cli(prog_name="tracks")
