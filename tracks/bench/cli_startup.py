"""How long the read-only ``tracks`` commands take, start-up included: a measurement, not a test.

    python -m tracks.bench.cli_startup [--rounds 10] [--json FILE] [--baseline DIR]

Runs each command as a user does (the ``tracks`` script of this environment, a fresh process
each time) against the servers the environment names (``TRACKS_*_URL``, else the embedded ones
running under ``TRACKS_DATA_DIR``: ``tracks dev up``, then ``tracks demo`` for data). The run is
the newest one (``tracks runs ls``), the schedule the first one (``tracks schedule ls``; without
one, ``schedule next|history`` are left out). Commands take turns, one round at a time, so a
burst of load on the shared machine falls on all of them. Prints per command the median and the
worst wall time, the median CPU time (user + system: what load does not inflate), and the load
average before and after; ``python -c pass`` is the floor. ``--baseline DIR`` (a checkout of
another commit) times that code alongside, each command's two runs back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["commands", "measure"]

OK_CODES = (0, 3)  # 3: `alerts check` found an alert (a measurement, not a health check)


def commands(tracks: str, cid: str, schedule: str | None) -> dict[str, list[str]]:
    """The read-only commands of issue #14, by the name the report gives them."""
    found = {
        "python -c pass": [str(Path(tracks).with_name("python")), "-c", "pass"],
        "tracks --version": [tracks, "--version"],
        "tracks --help": [tracks, "--help"],
        "tracks status CID": [tracks, "status", cid],
        "tracks chain CID": [tracks, "chain", cid],
        "tracks runs ls": [tracks, "runs", "ls"],
        "tracks runs show CID": [tracks, "runs", "show", cid],
        "tracks limits": [tracks, "limits"],
        "tracks schedule ls": [tracks, "schedule", "ls"],
        "tracks dlq ls": [tracks, "dlq", "ls"],
        "tracks alerts check": [tracks, "alerts", "check"],
    }
    if schedule is not None:
        found["tracks schedule next NAME"] = [tracks, "schedule", "next", schedule]
        found["tracks schedule history NAME"] = [tracks, "schedule", "history", schedule]
    return found


def _json_of(argv: list[str]) -> Any:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:])}: exit {done.returncode}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def measure(tracks: str, rounds: int, baseline: Path | None = None) -> dict[str, Any]:
    """Each command ``rounds`` times, in turns; figures in milliseconds. With ``baseline`` (a
    checkout of another commit), each run of a command is paired with one of that code (the
    same script, ``PYTHONPATH=baseline``), the pair's order alternating by round."""
    runs = _json_of([tracks, "runs", "ls", "--limit", "1", "--json"])
    if not runs:
        raise SystemExit("no runs to show: run `tracks demo` first")
    schedules = _json_of([tracks, "schedule", "ls", "--json"])
    todo = commands(tracks, runs[0]["correlationId"], schedules[0]["name"] if schedules else None)
    envs: dict[str, dict[str, str] | None] = {"this": None}
    if baseline is not None:
        envs["baseline"] = {**os.environ, "PYTHONPATH": str(baseline.resolve())}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {(c, n): [] for c in envs for n in todo}
    load_before = os.getloadavg()
    for round_ in range(rounds):
        for name, argv in todo.items():
            for code in list(envs)[:: 1 if round_ % 2 == 0 else -1]:
                times[code, name].append(_cpu_timed(argv, envs[code]))
    load_after = os.getloadavg()
    return {
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "commands": [{"command": name, **_figures(times["this", name])} for name in todo],
        **(
            {"baseline": [{"command": name, **_figures(times["baseline", name])} for name in todo]}
            if baseline is not None
            else {}
        ),
    }


def _figures(samples: list[tuple[float, float]]) -> dict[str, int]:
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return {
        "median_ms": round(statistics.median(walls) * 1000),
        "max_ms": round(max(walls) * 1000),
        "median_cpu_ms": round(statistics.median(cpus) * 1000),
    }


def _cpu_timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process, from its own resource usage."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = code = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if code not in OK_CODES:
        raise SystemExit(f"{' '.join(argv[1:])}: exit {code}: {err.decode(errors='replace').strip()}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tracks.bench.cli_startup", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--json", dest="json_file", type=Path, help="also write the figures here")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another commit (`git worktree add /tmp/base main`): time it alongside",
    )
    opts = parser.parse_args()
    tracks = str(Path(sys.executable).with_name("tracks"))
    result = measure(tracks, opts.rounds, opts.baseline)
    before, after = result["load_before"], result["load_after"]
    print(
        f"{result['rounds']} rounds on {result['cpus']} CPUs; load average before {before[0]} {before[1]} "
        f"{before[2]}, after {after[0]} {after[1]} {after[2]}"
    )
    base = {row["command"]: row for row in result.get("baseline", [])}
    print(f"{'command':34} {'median':>8} {'max':>8} {'median CPU':>11}" + ("   baseline" if base else ""))
    for row in result["commands"]:
        line = f"{row['command']:34} {row['median_ms']:>6}ms {row['max_ms']:>6}ms {row['median_cpu_ms']:>9}ms"
        if (old := base.get(row["command"])) is not None:
            line += f"   {old['median_ms']}ms (worst {old['max_ms']}ms; CPU {old['median_cpu_ms']}ms)"
        print(line)
    if opts.json_file is not None:
        opts.json_file.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
