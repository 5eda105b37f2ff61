"""``tracks deploy permissions MODULE[:WORKFLOW] [--format conf|json]``: NATS users for a deployment.

Needs no server: the users and their allow-lists come from the workflow definitions (see
:mod:`tracks.deploy.permissions`). Passwords stay out of the output: each is a variable
nats-server reads from its environment.
"""

from __future__ import annotations

import json

import click

from actors import WorkflowError
from actors.loader import LoadError, load_workflow, load_workflows
from scheduler.settings import SchedulerSettings
from tracks.cli._common import UserError
from tracks.deploy import deployment_users, to_conf, to_json

__all__ = ["deploy"]


@click.group()
def deploy() -> None:
    """What a deployment needs, derived from the workflows."""


@deploy.command("permissions")
@click.argument("target", metavar="MODULE[:WORKFLOW]")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["conf", "json"]),
    default="conf",
    show_default=True,
    help="conf: an authorization block for nats-server's configuration file; json: the same as data.",
)
def permissions(target: str, fmt: str) -> None:
    """Print the NATS users (one per track, the scheduler, the operator, an observer) with the
    publish/subscribe allow-lists each needs. Each password is read by nats-server from the
    variable TRACKS_NATS_PASSWORD_<USER> (e.g. TRACKS_NATS_PASSWORD_TRACK_GMAIL)."""
    module, _, name = target.partition(":")
    try:
        workflows = [load_workflow(target)] if name else load_workflows(module)
    except (LoadError, WorkflowError) as exc:
        raise UserError(str(exc)) from None
    try:
        users = deployment_users(workflows, history_consumer=SchedulerSettings().history_consumer)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(to_json(users), indent=2))
    else:
        click.echo(to_conf(users), nl=False)
