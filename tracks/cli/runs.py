"""Workflow runs from the command line: ``run``, ``status``, ``proceed``, ``resume``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
import click

from actors.ledger.progress import ProgressError, proceed, progress, resume
from subjects import STREAM
from subjects.priority import Priority
from tracks.cli._common import (
    PAYLOAD_HELP,
    UserError,
    async_command,
    get_settings,
    payload_store,
    read_payload,
    resolve_workflow,
)
from tracks.cli._connect import nats_session, nats_url, open_nats, pool_session

if TYPE_CHECKING:  # `tracks status` reads PostgreSQL only: no publisher, no OpenTelemetry SDK
    from foundation.jetstream.publisher import EventPublisher

__all__ = ["proceed_cmd", "resume_cmd", "run_cmd", "status_cmd"]


@click.command("run")
@click.argument("workflow")
@click.option("--payload", default="{}", show_default=True, help=f"Input of the root tracks: {PAYLOAD_HELP}.")
@click.option("--wait", is_flag=True, help="Wait for the run's outcome and print its result.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--correlation-id", default=None, help="The run's ID (default: a new one).")
@click.option(
    "--priority",
    type=click.Choice([p.value for p in Priority]),
    default=None,
    help="The run's priority, carried to every step (high: the roots' urgent lane). Default: normal.",
)
@async_command
async def run_cmd(
    workflow: str, payload: str, wait: bool, timeout: float, correlation_id: str | None, priority: str | None
) -> None:
    """Start a run of WORKFLOW (module:name); print its correlation ID, or with --wait its result.

    Exit codes with --wait: 0 completed, 1 failed, timed out or cancelled, 2 still running when the
    wait ended.
    """
    from actors.client import RunCancelled, RunFailed, RunTimedOut, TracksClient, WaitTimeout
    from tracks.cli._tracing import cli_tracing

    wf, body = resolve_workflow(workflow), read_payload(payload)
    settings = get_settings()
    cli_tracing(settings)  # the run's start is its trace's first span
    # the embedded default is started when no server is configured (as `tracks demo` does)
    nc = await open_nats(settings, nats_url(settings, start=True), streams=[STREAM])
    try:
        client = TracksClient(nc, payloads=payload_store(nc.jetstream(), settings))
        if not wait:
            click.echo(await client.start(wf, body, correlation_id=correlation_id, priority=priority))
            return
        try:
            result = await client.run(
                wf, body, timeout=timeout, correlation_id=correlation_id, priority=priority
            )
        except (RunFailed, RunTimedOut, RunCancelled) as exc:
            raise UserError(str(exc)) from None
        except WaitTimeout as exc:
            click.echo(str(exc), err=True)
            raise click.exceptions.Exit(2) from None
        click.echo(json.dumps(result, indent=2, default=str))
    finally:
        await nc.drain()


@asynccontextmanager
async def _db_and_publisher() -> AsyncIterator[tuple[asyncpg.Pool, EventPublisher]]:
    from foundation.jetstream.publisher import EventPublisher
    from tracks.cli._tracing import cli_tracing

    settings = get_settings()
    cli_tracing(settings)  # proceed and resume continue the run's trace
    async with pool_session(settings) as pool, nats_session(settings, streams=[STREAM]) as nc:
        try:
            yield pool, EventPublisher(nc.jetstream())
        except ProgressError as exc:
            raise UserError(str(exc)) from None


@click.command("status")
@click.argument("correlation_id")
@click.option("--json", "as_json", is_flag=True, help="Accepted for uniformity: the output is always JSON.")
@async_command
async def status_cmd(correlation_id: str, as_json: bool) -> None:
    """Where a run stands: {currentPhase, currentStep, completedPhases, canProceed, requiresManualTrigger}."""
    async with pool_session(get_settings()) as pool:  # reads PostgreSQL only: never waits for NATS
        try:
            state = await progress(pool, correlation_id)
        except ProgressError as exc:
            raise UserError(str(exc)) from None
    click.echo(json.dumps(state.as_wire(), indent=2))


@click.command("proceed")
@click.argument("correlation_id")
@async_command
async def proceed_cmd(correlation_id: str) -> None:
    """Release the manual gate the run waits at; its waiting steps start."""
    async with _db_and_publisher() as (pool, publisher):
        done = await proceed(pool, publisher, correlation_id)
    click.echo(f"released phase {done.phase}; started: {', '.join(done.tracks) or '(none waiting yet)'}")


@click.command("resume")
@click.argument("correlation_id")
@async_command
async def resume_cmd(correlation_id: str) -> None:
    """Continue a failed or timed-out run from its last successful steps (completed steps are skipped)."""
    async with _db_and_publisher() as (pool, publisher):
        done = await resume(pool, publisher, correlation_id)
    click.echo(f"resumed {correlation_id}: re-activated {', '.join(done.tracks) or 'nothing'}")
