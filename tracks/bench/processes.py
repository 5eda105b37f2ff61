"""One ``tracks actor run`` process per track, the way the runtime is deployed (``--processes``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from foundation.settings import Settings

__all__ = ["track_processes"]

_START = "from tracks.cli.main import main; main()"


@contextlib.asynccontextmanager
async def track_processes(
    settings: Settings, prefix: str, stages: int, *, timeout_s: float = 120.0
) -> AsyncIterator[list[int]]:
    """Start an actor process for each track of the bench chain ``prefix``; yield their pids.

    Yields once every process says it is running; each gets SIGTERM (a clean stop) at the end.
    """
    env = {
        **os.environ,
        "TRACKS_NATS_URL": settings.nats_url or "",
        "TRACKS_DATABASE_URL": settings.database_url or "",
        "TRACKS_BENCH_PREFIX": prefix,
        "TRACKS_BENCH_STAGES": str(stages),
    }
    with tempfile.TemporaryDirectory(prefix="tracks-bench-") as tmp:
        logs = [Path(tmp) / f"s{i}.log" for i in range(stages)]
        procs: list[asyncio.subprocess.Process] = []
        try:
            for i, log in enumerate(logs):
                with log.open("wb") as out:
                    procs.append(
                        await asyncio.create_subprocess_exec(
                            sys.executable,
                            "-c",
                            _START,
                            "actor",
                            "run",
                            f"tracks.bench.chain_app:{prefix}-s{i}",
                            env=env,
                            stdout=out,
                            stderr=out,
                        )
                    )
            await _wait_running(procs, logs, timeout_s)
            yield [p.pid for p in procs]
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_running(procs: list[asyncio.subprocess.Process], logs: list[Path], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = set(range(len(procs)))
    while waiting:
        for i in list(waiting):
            text = logs[i].read_text(errors="replace")
            if "running " in text:
                waiting.discard(i)
            elif procs[i].returncode is not None or time.monotonic() > deadline:
                tail = " | ".join(text.strip().splitlines()[-3:])
                raise RuntimeError(f"bench actor process for track s{i} did not start: {tail}")
        await asyncio.sleep(0.1)
