"""The embedded default: nats-server and PostgreSQL under one data dir, shared by processes.

``tracks dev up`` (or any command run with no server URLs) starts them once; later processes
find them through ``state.json`` and reuse them; ``tracks dev down`` stops them.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tracks.embedded._process import pid_alive, port_open
from tracks.embedded.nats_server import NatsServer
from tracks.embedded.postgres import PostgresServer

__all__ = ["EmbeddedStack", "ServerStatus"]

# Preferred ports, well away from the standard 4222/5432 (a free port is picked if taken).
_NATS_PORT = 14222
_PG_PORT = 15432


@dataclass(frozen=True)
class ServerStatus:
    name: str
    running: bool
    pid: int | None
    url: str | None


class EmbeddedStack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.nats = NatsServer(self.data_dir / "nats")
        self.postgres = PostgresServer(self.data_dir / "postgres")

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "state.json"

    def up(self) -> tuple[str, str]:
        """Start what is not running (reusing what is); return (nats_url, database_url).

        All or nothing: when one server fails to start, those this call started are stopped.
        """
        with self._locked():
            state = self._read_state()
            started: list[tuple[str, NatsServer | PostgresServer]] = []
            try:
                for name, server, preferred in (
                    ("nats", self.nats, _NATS_PORT),
                    ("postgres", self.postgres, _PG_PORT),
                ):
                    known = state.get(name, {})
                    if pid_alive(known.get("pid")) and port_open(int(known.get("port", 0))):
                        server.pid, server.port = int(known["pid"]), int(known["port"])
                        continue
                    server.port = int(known.get("port") or 0) or preferred
                    if port_open(server.port):
                        server.port = 0  # someone else's server: pick a free port
                    server.start(daemon=True)
                    started.append((name, server))
                    assert server.pid is not None
                    state[name] = {"pid": server.pid, "port": server.port}
                    self._write_state(state)  # recorded at once: `down` finds it whatever follows
            except BaseException:
                for name, server in reversed(started):
                    with suppress(Exception):
                        server.stop()
                    state.get(name, {}).pop("pid", None)
                self._write_state(state)
                raise
        return self.nats.url, self.postgres.url

    def down(self) -> list[str]:
        """Stop both servers (data is kept); return what was stopped.

        A server missing from ``state.json`` (lost, or never written) is still found through
        its data dir, as ``up`` would adopt it.
        """
        stopped = []
        with self._locked():
            state = self._read_state()
            for name, server in (("nats", self.nats), ("postgres", self.postgres)):
                known = state.get(name, {})
                if pid_alive(known.get("pid")):
                    server.pid, server.port = int(known["pid"]), int(known["port"])
                elif not server.adopt_running():
                    known.pop("pid", None)
                    continue
                server.stop()
                stopped.append(name)
                known.pop("pid", None)
            self._write_state(state)
        return stopped

    def status(self) -> list[ServerStatus]:
        state = self._read_state()
        result = []
        for name, server in (("nats", self.nats), ("postgres", self.postgres)):
            known = state.get(name, {})
            alive = pid_alive(known.get("pid"))
            if known.get("port"):
                server.port = int(known["port"])
            result.append(
                ServerStatus(name, alive, known.get("pid") if alive else None, server.url if alive else None)
            )
        return result

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time decides what to start (two actors starting together)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, dict[str, int]]:
        try:
            data: dict[str, dict[str, int]] = json.loads(self._state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict[str, dict[str, int]]) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_file)
