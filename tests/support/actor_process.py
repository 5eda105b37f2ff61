"""Run ``tracks actor run ...`` as a real subprocess, so a test can SIGKILL or SIGTERM it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ActorProcess", "tracks_command"]

REPO = Path(__file__).resolve().parents[2]


def tracks_command() -> list[str]:
    """The ``tracks`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "tracks"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from tracks.cli.main import main; main()"]


@dataclass
class ActorProcess:
    """One actor process; its stdout and stderr go to ``log_file`` (shown when a test fails)."""

    targets: list[str]
    env: dict[str, str]
    log_file: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    command: tuple[str, ...] = ("actor", "run")
    """The ``tracks`` subcommand; ``("scheduler", "run")`` (no targets) runs a scheduler."""

    def start(self) -> None:
        env = {**os.environ, "TRACKS_LOG_LEVEL": "INFO", **self.env}
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [*tracks_command(), *self.command, *self.targets],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        """The exit code, waiting up to ``timeout`` seconds without blocking the event loop."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"actor did not exit within {timeout:.0f}s; log:\n{self.output()}")
            await asyncio.sleep(0.05)
        return code

    def output(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL and reap; safe to call when it already exited."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
