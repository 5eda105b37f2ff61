"""The ``tracks`` command. Each group lives in its own module and is registered here.

Registered by name and imported when invoked (:class:`LazyGroup`): ``tracks status`` does not
import the runtime, the scheduler, the console and the bench, and ``tracks --help`` lists them
from :data:`SUMMARIES` without importing any.
"""

from __future__ import annotations

import importlib
import logging

import click

from tracks import __version__
from tracks.cli._common import CONNECT_TIMEOUT_KEY, EXIT_CODES

__all__ = ["COMMANDS", "SUMMARIES", "LazyGroup", "cli", "main"]

COMMANDS = {
    "dev": "tracks.cli.dev:dev",
    "db": "tracks.cli.db:db",
    "actor": "tracks.cli.actor:actor",
    "trigger": "tracks.cli.trigger:trigger",
    "chain": "tracks.cli.operations.chain:chain",
    "dlq": "tracks.cli.operations.dlq:dlq",
    "alerts": "tracks.cli.operations.alerts:alerts",
    "limits": "tracks.cli.operations.limits:limits",
    "bench": "tracks.cli.bench:bench",
    "demo": "tracks.cli.demo:demo",
    "deploy": "tracks.cli.deploy:deploy",
    "run": "tracks.cli.runs:run_cmd",
    "status": "tracks.cli.runs:status_cmd",
    "proceed": "tracks.cli.runs:proceed_cmd",
    "resume": "tracks.cli.runs:resume_cmd",
    "schedule": "tracks.cli.schedule:schedule",
    "scheduler": "tracks.cli.operations.scheduler_run:scheduler",
    "workflow": "tracks.cli.workflow:workflow",
    "retention": "tracks.cli.operations.retention:retention",
    "top": "tracks.cli.top:top",
    "runs": "tracks.cli.runs_admin:runs",  # runs ls | show
    "cancel": "tracks.cli.runs_admin:cancel_cmd",
    "console": "tracks.cli.operations.console:console",
}
"""Every top-level command: its name and ``module:attribute``."""

SUMMARIES = {
    "dev": "Run the embedded servers (used when TRACKS_NATS_URL / TRACKS_DATABASE_URL are unset).",
    "db": "Database schema.",
    "actor": "Run track actors.",
    "trigger": "Publish a run command for TRACK and print its correlation ID.",
    "chain": "Print what happened to one run: every track event in order, then each step's status.",
    "dlq": "Dead letters (the DLQ stream): list, show, replay, purge.",
    "alerts": "DLQ backlog, stream space and failure-rate alerts (thresholds: TRACKS_ALERT_*).",
    "limits": "Show each flow limit: its rate and slots, use now across all replicas, and steps waiting.",
    "bench": "Run each scenario against the raw baseline and the full runtime (records and tracing on).",
    "demo": (
        "Run the receipts product on its sample mail: scan → process → file → book; dedup, report, backup."
    ),
    "deploy": "What a deployment needs, derived from the workflows.",
    "run": "Start a run of WORKFLOW (module:name); print its correlation ID, or with --wait its result.",
    "status": (
        "Where a run stands: {currentPhase, currentStep, completedPhases, canProceed, requiresManualTrigger}."
    ),
    "proceed": "Release the manual gate the run waits at; its waiting steps start.",
    "resume": (
        "Continue a failed or timed-out run from its last successful steps (completed steps are skipped)."
    ),
    "schedule": "Cron schedules in PostgreSQL (crontab(5) syntax; 6 fields = seconds first).",
    "scheduler": "The cron tick publisher (see `tracks schedule` to manage schedules).",
    "workflow": "Inspect workflow definitions.",
    "retention": "Retention of finished runs' records and payloads (TRACKS_RETENTION_S).",
    "top": (
        "Live per-track view of running actors: steps/s, p50/p99 step time, pending, in flight, failures,"
        " breaker state and DLQ depth, from their /metrics (TRACKS_HTTP_PORT)."
    ),
    "runs": "Find workflow runs and look into one (PostgreSQL only).",
    "cancel": (
        "Cancel a running run: no further step starts, steps in flight see ctx.cancelled, and "
        "tracks.workflow.<wf>.cancelled.<cid> is published."
    ),
    "console": (
        "Serve the web console: runs (filter, follow, proceed, resume, cancel), dead letters (show, "
        "replay, purge), schedules (next fire times, enable/disable, history) and per-track metrics, with"
        " the same data as JSON under /api/."
    ),
}
"""The first sentence of each command's help (all its line in ``tracks --help`` can show), so that
``tracks --help`` imports no command; tests/tracks/cli/test_cli_startup.py checks them against the help."""


class LazyGroup(click.Group):
    """A group whose commands are imported when first looked up."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self._lazy:
            module, attr = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command), self._lazy[cmd_name]
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As :meth:`click.Group.format_commands`, with the summaries of commands not yet imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name not in self.commands and name in SUMMARIES:
                summary = click.Command(name, help=SUMMARIES[name])  # shortened as click does
                rows.append((name, summary.get_short_help_str(limit)))
            elif (command := self.get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"tracks {__version__}")  # not importlib.metadata: ~20 ms of start-up
        ctx.exit()


_EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)


@click.group(cls=LazyGroup, lazy=COMMANDS, epilog=_EPILOG)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
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
    from foundation.logs import configure_logging

    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    try:
        configure_logging(level)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.meta[CONNECT_TIMEOUT_KEY] = connect_timeout


def main() -> None:
    cli(prog_name="tracks")
