"""``tracks bench``: throughput and latency of the runtime next to a raw nats-py chain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from tracks.bench import BenchConfig, run_bench
from tracks.cli._common import async_command, get_settings

__all__ = ["bench"]


@click.command()
@click.option("-n", "--workflows", "n", default=20_000, show_default=True, help="Workflows per burst.")
@click.option("--stages", default=4, show_default=True, help="Tracks in the linear chain.")
@click.option(
    "--paced", "paced_n", default=3_000, show_default=True, help="Workflows in the paced latency run."
)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    type=float,
    default=(200.0, 1000.0),
    show_default=True,
    help="Workflows/s of a paced latency run; repeat the option for several rates.",
)
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Linear bursts to run, raw and runtime alternately; the median pair is reported, with every ratio.",
)
@click.option(
    "--faststream/--no-faststream",
    default=True,
    show_default=True,
    help="Also run the chain on FastStream's JetStream pull subscribers (needs `tracks[faststream]`).",
)
@click.option(
    "--processes",
    is_flag=True,
    help="Also run the linear chain with one `tracks actor run` process per track (burst and paced).",
)
@click.option(
    "--limits",
    is_flag=True,
    help="Also measure flow control: max_running and a per-key limit on every stage (their cost), "
    "a rate limit on the first (its accuracy).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write JSON here."
)
@async_command
async def bench(
    n: int,
    stages: int,
    paced_n: int,
    rates: tuple[float, ...],
    repeat: int,
    faststream: bool,
    processes: bool,
    limits: bool,
    json_path: Path | None,
) -> None:
    """Run each scenario against the raw baseline and the full runtime (records and tracing on)."""
    cfg = BenchConfig(
        n=n,
        stages=stages,
        paced_n=paced_n,
        paced_rates=tuple(rates),
        repeat=repeat,
        faststream=faststream,
        processes=processes,
        limits=limits,
    )
    results = await run_bench(get_settings(), cfg)
    _print(results)
    if json_path:
        await asyncio.to_thread(_write_json, json_path, results)
        click.echo(f"wrote {json_path}")


def _write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


_HEAD = f"{'':16} {'workflows/s':>12} {'p50 ms':>9} {'p99 ms':>9} {'done':>7} {'cpu ms/wf':>10} {'RSS MB':>7}"


def _row(name: str, m: dict[str, Any]) -> str:
    return (
        f"{name:16} {m['per_second']:12.1f} {m['p50_ms']:9.1f} {m['p99_ms']:9.1f} {m['completed']:7}"
        f" {m['cpu_ms_per_workflow']:10.3f} {m['rss_mb']:7.1f}"
    )


def _stats(s: dict[str, float]) -> str:
    return f"p50 {s['p50']:.1f} ms  p99 {s['p99']:.1f} ms  (n={s['n']:.0f})" if s.get("n") else "no samples"


def _print(results: dict[str, Any]) -> None:
    lin = results["linear"]
    click.echo(f"linear chain, {results['config']['stages']} tracks, burst of {lin['raw']['n']} workflows")
    click.echo(_HEAD)
    for name in ("raw", "runtime"):
        m = lin[name]
        click.echo(_row(name, m))
    procs = lin.get("processes")
    if procs:
        click.echo(_row("runtime, 1/track", procs["burst"]))
    fast = lin["faststream"]
    if "skipped" in fast:
        click.echo(fast["skipped"])
    else:
        click.echo(_row("faststream", fast))
    more = f" (median of {len(lin['ratios'])} runs: {', '.join(map(str, lin['ratios']))})"
    click.echo(f"ratio runtime/raw: {lin['ratio']}{more if len(lin['ratios']) > 1 else ''}")
    if "skipped" not in fast:
        click.echo(f"ratio runtime/faststream: {fast['runtime_ratio']}")
    if procs:
        click.echo(f"ratio runtime (one process per track)/raw: {procs['ratio']}")
    click.echo(
        "RSS: the process running the actors (this one, with the driver; or the largest actor process)"
    )
    dia = results["diamond"]
    click.echo(f"diamond A -> {{B, C}} -> D, burst of {dia['raw']['n']} workflows")
    for name in ("raw", "runtime"):
        m = dia[name]
        click.echo(_row(name, m))
    click.echo(f"ratio runtime/raw: {dia['ratio']}")
    f = results["failures"]
    click.echo(f"failure path ({f['runs']} runs, zero back-off):")
    click.echo(f"  failure -> successful retry   {_stats(f['failure_to_successful_retry_ms'])}")
    click.echo(f"  last failure -> dead letter   {_stats(f['last_failure_to_dead_letter_ms'])}")
    hp = f["happy_path"]
    click.echo(
        f"  happy path with / without failure handling: {hp['with_failure_handling']['per_second']:.1f}"
        f" / {hp['without']['per_second']:.1f} workflows/s (cost {hp['cost_pct']}%); CPU per workflow"
        f" {hp['with_failure_handling']['cpu_ms_per_workflow']:.3f}"
        f" / {hp['without']['cpu_ms_per_workflow']:.3f} ms"
        f" (cost {hp['cpu_cost_pct']}%)"
    )
    lim = results.get("limits")
    if lim:
        click.echo("flow control (linear chain; cost against the unlimited runtime above):")
        click.echo(_HEAD)
        for name in ("max_running", "per_key"):
            click.echo(f"{_row(name, lim[name])}  cost {lim[name]['cost_pct']}%")
        r = lim["rate_limit"]
        click.echo(
            f"rate_limit {r['limit_per_s']}/s on the first stage: {r['achieved_per_s']} workflows/s achieved "
            f"({r['accuracy_pct']}% of the limit)"
        )
    for k, paced in enumerate(lin["paced"]):
        click.echo(f"paced at {paced['rate']:.0f} workflows/s (latency):")
        for name in ("raw", "runtime"):
            click.echo(_row(name, paced[name]))
        if paced.get("waits"):
            click.echo(
                "  runtime's waits per step, p50 / p99 ms: "
                + ", ".join(f"{k} {w['p50_ms']:.1f} / {w['p99_ms']:.1f}" for k, w in paced["waits"].items())
            )
        if procs:
            click.echo(_row("runtime, 1/track", procs["paced"][k]["runtime"]))
