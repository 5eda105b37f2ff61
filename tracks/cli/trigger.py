"""``tracks trigger TRACK --payload JSON|@FILE|- [--correlation-id ID]``.

A payload over ``TRACKS_PAYLOAD_THRESHOLD_BYTES`` is stored in the payload store and sent by
reference, as the actors do with large outputs.
"""

from __future__ import annotations

import click

from actors import TracksClient
from subjects import STREAM, check_token
from subjects.priority import Priority
from tracks.cli._common import (
    PAYLOAD_HELP,
    UserError,
    async_command,
    get_settings,
    payload_store,
    read_payload,
)
from tracks.cli._connect import nats_session
from tracks.cli._tracing import cli_tracing

__all__ = ["trigger"]


@click.command()
@click.argument("track")
@click.option("--payload", default="{}", show_default=True, help=f"The track's input: {PAYLOAD_HELP}.")
@click.option("--correlation-id", default=None, help="Default: a new one.")
@click.option("--user-id", default=None, help="Recorded with the run (processing_logs.user_id).")
@click.option(
    "--priority",
    type=click.Choice([p.value for p in Priority]),
    default=None,
    help="Tracks-Priority of the run, carried downstream (high: the track's urgent lane). Default: normal.",
)
@async_command
async def trigger(
    track: str, payload: str, correlation_id: str | None, user_id: str | None, priority: str | None
) -> None:
    """Publish a run command for TRACK and print its correlation ID."""
    body = read_payload(payload)
    try:  # before connecting: a name that can never be valid needs no server to say so
        check_token(track, "track name")
        if correlation_id is not None:
            check_token(correlation_id, "correlation ID")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = get_settings()
    cli_tracing(settings)
    async with nats_session(settings, streams=[STREAM]) as nc:
        js = nc.jetstream()
        client = TracksClient(js, payloads=payload_store(js, settings))
        try:
            cid, ack = await client.trigger(
                track, body, correlation_id=correlation_id, user_id=user_id, priority=priority
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
    note = " (duplicate: already triggered)" if ack.duplicate else ""
    click.echo(f"{cid}{note}")
