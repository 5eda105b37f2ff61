"""``tracks trigger TRACK --payload JSON [--correlation-id ID]``."""

from __future__ import annotations

import click

from actors import TracksClient
from subjects import check_token
from tracks.connections import connect_nats, resolve_endpoints

from ._common import UserError, async_command, get_settings, parse_json_object

__all__ = ["trigger"]


@click.command()
@click.argument("track")
@click.option("--payload", default="{}", show_default=True, help="The track's input, a JSON object.")
@click.option("--correlation-id", default=None, help="Default: a new one.")
@click.option("--user-id", default=None)
@async_command
async def trigger(track: str, payload: str, correlation_id: str | None, user_id: str | None) -> None:
    """Publish a run command for TRACK and print its correlation ID."""
    body = parse_json_object(payload)
    try:  # before connecting: a name that can never be valid needs no server to say so
        check_token(track, "track name")
        if correlation_id is not None:
            check_token(correlation_id, "correlation ID")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = get_settings()
    endpoints = resolve_endpoints(settings)
    nc = await connect_nats(settings, endpoints.nats_url, name="tracks-cli", wait_for_server=False)
    try:
        client = TracksClient(nc.jetstream())
        try:
            cid, ack = await client.trigger(track, body, correlation_id=correlation_id, user_id=user_id)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    finally:
        await nc.drain()
    note = " (duplicate: already triggered)" if ack.duplicate else ""
    click.echo(f"{cid}{note}")
