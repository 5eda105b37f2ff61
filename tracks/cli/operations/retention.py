"""``tracks retention run [--older-than-days N]``: purge finished coordination data.

Meant for a daily cron job (or a schedule); it is safe to run while actors run and from
several places at once: every delete re-checks its conditions, batch by batch.
"""

from __future__ import annotations

import json

import click

from actors.ledger.retention import purge
from actors.transport.payloads import PayloadStore
from tracks.cli._common import UserError, async_command, get_settings
from tracks.cli._connect import nats_session, pool_session

__all__ = ["retention"]


@click.group()
def retention() -> None:
    """Retention of finished runs' records and payloads (TRACKS_RETENTION_S)."""


@retention.command("run")
@click.option(
    "--older-than-days",
    type=float,
    default=None,
    help="Purge what finished more than N days ago (default: TRACKS_RETENTION_S).",
)
@click.option(
    "--budget",
    type=float,
    default=None,
    help="Share of the time spent deleting, resting the rest, 0 < B <= 1 (default: TRACKS_RETENTION_BUDGET).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the cut-off and the counts.")
@async_command
async def run_cmd(older_than_days: float | None, budget: float | None, as_json: bool) -> None:
    """Delete finished steps, their logs, finished workflow runs and their payloads; print counts."""
    settings = get_settings()
    if older_than_days is not None and older_than_days < 0:
        raise UserError(f"--older-than-days must be >= 0, got {older_than_days:g}")
    if budget is not None and not 0 < budget <= 1:
        raise UserError(f"--budget must be in (0, 1], got {budget:g}")
    older_than_s = older_than_days * 86400 if older_than_days is not None else settings.retention_s
    async with pool_session(settings) as pool, nats_session(settings) as nc:
        payloads = PayloadStore(
            nc.jetstream(), threshold_bytes=settings.payload_threshold_bytes, ttl_s=settings.payload_ttl_s
        )
        counts = await purge(
            pool,
            older_than_s=older_than_s,
            payloads=payloads,
            budget=settings.retention_budget if budget is None else budget,
        )
    if as_json:
        purged = {
            "".join(w.title() if i else w for i, w in enumerate(k.split("_"))): n for k, n in counts.items()
        }
        click.echo(json.dumps({"olderThanS": older_than_s, "purged": purged}, indent=2))
        return
    click.echo(f"purged what finished more than {older_than_s / 86400:g} day(s) ago:")
    for name, n in counts.items():
        click.echo(f"  {name:16} {n}")
