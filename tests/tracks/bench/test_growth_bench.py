"""``python -m tracks.bench.growth``, tiny: it prints each wave's figures and leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[3]


def test_growth_bench_prints_waves_and_stops_its_servers(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "tracks.bench.growth", "--runs", "50", "--prefill", "500", "--steps", "1"]
    cmd += ["--retention", "--fast", "--settle-s", "0"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("TRACKS_NATS_URL", None)
    env.pop("TRACKS_DATABASE_URL", None)
    bench = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: dict[int, float] = {}  # every process the bench started (its servers), by pid and start time
    me = psutil.Process(bench.pid)
    while bench.poll() is None:
        try:
            for child in me.children(recursive=True):
                seen.setdefault(child.pid, child.create_time())
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    out, _ = bench.communicate(timeout=300)
    assert bench.returncode == 0, out
    names = set()
    for pid, started in seen.items():
        try:
            p = psutil.Process(pid)
            alive = p.create_time() == started and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, f"still running after the bench: {pid} {p.cmdline()}"
        names.add(pid)
    assert len(names) >= 2  # nats-server and postgres were seen (and are gone)
    assert list(tmp_path.iterdir()) == []  # its temporary directory is gone

    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["wave", "runs", "runs/s"])
    first, second = (line.split() for line in lines[header + 1 : header + 3])
    assert first[:2] == ["real", "50"] and second[:2] == ["+500", "600"]
    for row in (first, second):
        assert len(row) == 13 and float(row[2]) > 0 and float(row[4]) >= float(row[3]) > 0
    assert any(line.startswith("last size / first: ") for line in lines)
    retention = lines.index(next(line for line in lines if line.startswith("retention:")))
    assert [lines[retention + k].split()[0] for k in (2, 3, 4)] == ["no", "purging", "no"]
    purge = next(line for line in lines if line.strip().startswith("purge (budget 1, "))
    assert int(purge.split("): ")[1].split(" rows deleted")[0]) >= 0
    assert any("runs/s with the purge: " in line for line in lines)
