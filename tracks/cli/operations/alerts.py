"""``tracks alerts check``: the alert conditions, checked once, for a cron job or a person.

Exit code 0 when nothing fires, 3 when an alert fires (1 stays "you made a mistake"), so
``tracks alerts check || notify`` works. Nothing is published: running actors do that.
"""

from __future__ import annotations

import json

import click

from actors.failures.alerts import check, load_alert_settings
from foundation.settings import SettingsError
from subjects import DLQ_STREAM, check_token
from tracks.cli._common import UserError, async_command, get_settings
from tracks.cli._connect import nats_session, pool_session

__all__ = ["ALERT_EXIT_CODE", "alerts"]

ALERT_EXIT_CODE = 3


@click.group()
def alerts() -> None:
    """DLQ backlog, stream space and failure-rate alerts (thresholds: TRACKS_ALERT_*)."""


@alerts.command("check")
@click.option(
    "--track", "tracks", multiple=True, help="Only these tracks' failure rates (default: every active one)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert.")
@async_command
async def check_cmd(tracks: tuple[str, ...], as_json: bool) -> None:
    """Check once and print what fires; exit 3 when something does, else 0."""
    try:
        for track in tracks:
            check_token(track, "track name")
        alert_settings = load_alert_settings()
    except (ValueError, SettingsError) as exc:
        raise UserError(str(exc)) from None
    settings = get_settings()
    async with nats_session(settings, streams=[DLQ_STREAM]) as nc, pool_session(settings) as pool:
        fired = await check(nc.jetstream(), pool, alert_settings, list(tracks) or None)
    for alert in fired:
        click.echo(
            json.dumps(alert.payload("tracks-cli")) if as_json else f"ALERT {alert.name}: {alert.message}"
        )
    if not fired:
        s = alert_settings
        click.echo(
            f"ok: at most {s.dlq_threshold} dead letters; no stream {s.stream_full:.0%} full; no track "
            f"over {s.failure_rate:.0%} failed steps in the last {s.window_s:g}s (judged from "
            f"{s.min_events} steps)",
            err=True,
        )
        return
    raise click.exceptions.Exit(ALERT_EXIT_CODE)
