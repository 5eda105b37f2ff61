"""Run the ``tracks`` command as a user would, against the suite's servers (never the embedded default)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass

from tests.conftest import Servers
from tests.support.actor_process import REPO, tracks_command

__all__ = ["Result", "run_tracks"]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


async def run_tracks(
    servers: Servers, *args: str, nats_url: str | None = None, stdin: str | None = None, timeout: float = 30
) -> Result:
    env = {
        **os.environ,
        "TRACKS_NATS_URL": nats_url or servers.nats_url,
        "TRACKS_DATABASE_URL": servers.database_url,
    }
    env.pop("TRACKS_LOG_LEVEL", None)
    done = await asyncio.to_thread(
        subprocess.run,
        [*tracks_command(), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin or "",
    )
    return Result(done.returncode, done.stdout, done.stderr)
