"""A nats-server of a test's own, started from a configuration file the test writes
(authorization, TLS): on a free loopback port, its store under the test's temp dir."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tracks.embedded import nats_server_binary
from tracks.embedded._process import free_port, wait_for_port

__all__ = ["ConfiguredNats", "configured_nats"]


@dataclass
class ConfiguredNats:
    port: int
    log_file: Path
    scheme: str = "nats"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@contextmanager
def configured_nats(
    root: Path, body: str, *, env: dict[str, str] | None = None, scheme: str = "nats"
) -> Iterator[ConfiguredNats]:
    """nats-server with JetStream and ``body`` appended to its configuration; ``env`` is its
    environment's addition (nats-server resolves ``$VARIABLES`` of the file from it)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nats.conf"
    conf.write_text(
        f'listen: "127.0.0.1:{port}"\nserver_name: "conf-{port}"\n'
        f'jetstream {{ store_dir: "{root / "js"}" }}\n{body}\n'
    )
    server = ConfiguredNats(port, root / "nats-server.log", scheme)
    with open(server.log_file, "ab") as log:
        proc = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(conf)],
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        try:
            wait_for_port(port, 20, "nats-server", f": {server.log()[-2000:]}")
        except RuntimeError:
            if proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {server.log()[-2000:]}") from None
            raise
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
