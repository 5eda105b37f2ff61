"""``tracks limits [--json]``: each flow limit (actors/flow/), its use now and what waits for it."""

from __future__ import annotations

import json
from typing import Any

import click

from actors.flow.store import limit_rows
from tracks.cli._common import async_command, get_settings
from tracks.cli._connect import pool_session

__all__ = ["limits"]


@click.command("limits")
@click.option("--json", "as_json", is_flag=True, help='One JSON object: {"limits": [...]}.')
@async_command
async def limits(as_json: bool) -> None:
    """Show each flow limit: its rate and slots, use now across all replicas, and steps waiting.

    RUNNING counts slots held (leases not yet expired), STARTS the starts in the current rate
    window, WAITING the steps the replicas hold at their gates for it (as of their last lease
    renewal, every third of ack_wait). A track's own limits are named track:<track> and
    track:<track>:key (per key); shared ones by their Limit name.
    """
    async with pool_session(get_settings()) as pool:
        rows = await limit_rows(pool)
    shown = [_wire(r) for r in rows]
    if as_json:
        click.echo(json.dumps({"limits": shown}, indent=2))
        return
    if not shown:
        click.echo("no flow limits recorded (a runtime records its tracks' limits when it starts)")
        return
    click.echo(
        f"{'LIMIT':40} {'RATE':>8} {'MAX':>5} {'PER KEY':>7} {'RUNNING':>7} {'KEYS':>5} "
        f"{'STARTS':>6} {'WAITING':>7}"
    )
    for r in shown:
        click.echo(
            f"{r['name']:40} {r['rate'] or '-':>8} {_dash(r['maxRunning']):>5} "
            f"{'yes' if r['perKey'] else 'no':>7} {r['running']:>7} {r['keysRunning']:>5} "
            f"{r['startsInWindow']:>6} {r['waiting']:>7}"
        )


def _wire(r: dict[str, Any]) -> dict[str, Any]:
    rate = None
    if r["rate_n"] is not None:
        period = r["rate_period_s"]
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(period)
        rate = f"{r['rate_n']}/{unit}" if unit else f"{r['rate_n']}/{period:g}s"
    return {
        "name": r["name"],
        "rate": rate,
        "maxRunning": r["max_running"],
        "perKey": r["per_key"],
        "running": r["running"],
        "keysRunning": r["keys_running"],
        "startsInWindow": r["starts"] if rate else 0,
        "waiting": int(r["waiting"]),
    }


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)
