"""The embedded default: nats-server and PostgreSQL under one data dir, shared by processes.

``tracks dev up`` (or any command run with no server URLs) starts them once; later processes
find them through ``state.json`` and reuse them; ``tracks dev down`` stops them.
``tracks dev up --cluster 3`` runs a JetStream cluster (:class:`NatsCluster`) in the single
nats-server's place; ``state.json`` remembers it, so later commands use (and restart) the cluster.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tracks.embedded._process import pid_alive, port_open
from tracks.embedded.nats_cluster import NatsCluster
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

    @property
    def cluster(self) -> NatsCluster | None:
        """The JetStream cluster recorded in ``state.json`` (None: a single nats-server)."""
        size = int(self._read_state().get("cluster", {}).get("size", 0))
        return NatsCluster(self.data_dir / "nats-cluster", size) if size > 1 else None

    def up(self, cluster: int = 0) -> tuple[str, str]:
        """Start what is not running (reusing what is); return (nats_url, database_url).

        ``cluster``: run that many nats-servers as one JetStream cluster (the URL lists them all).
        All or nothing: when one server fails to start, those this call started are stopped.
        """
        with self._locked():
            state = self._read_state()
            recorded = int(state.get("cluster", {}).get("size", 0))
            if cluster > 1 and recorded not in (0, cluster):
                raise RuntimeError(
                    f"a {recorded}-node cluster is recorded under {self.data_dir}; run `tracks dev up "
                    f"--cluster {recorded}`, or another TRACKS_DATA_DIR for another size"
                )
            if cluster > 1 and pid_alive(state.get("nats", {}).get("pid")):
                raise RuntimeError(
                    f"a single nats-server runs under {self.data_dir}: run `tracks dev down` first"
                )
            size = cluster if cluster > 1 else recorded
            started: list[tuple[str, NatsServer | PostgresServer | NatsCluster]] = []
            nats_url = ""
            try:
                if size > 1:  # asked for: every node up; else one running is enough (`dev stop NODE`)
                    nodes = NatsCluster(self.data_dir / "nats-cluster", size)
                    running = [node.adopt_running() for node in nodes.nodes]
                    if not all(running) and (cluster > 1 or not any(running)):
                        nodes.start(daemon=True)
                        started.append(("nats", nodes))
                        state["cluster"] = {"size": size}
                        self._write_state(state)
                        nodes.wait_ready()
                    nats_url = nodes.url
                servers: list[tuple[str, NatsServer | PostgresServer, int]] = [
                    ("postgres", self.postgres, _PG_PORT)
                ]
                if size <= 1:
                    servers.insert(0, ("nats", self.nats, _NATS_PORT))
                for name, server, preferred in servers:
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
                for name, stoppable in reversed(started):
                    with suppress(Exception):
                        stoppable.stop()
                    state.get(name, {}).pop("pid", None)
                self._write_state(state)
                raise
        return (nats_url if size > 1 else self.nats.url), self.postgres.url

    def down(self) -> list[str]:
        """Stop both servers (data is kept); return what was stopped.

        A server missing from ``state.json`` (lost, or never written) is still found through
        its data dir, as ``up`` would adopt it.
        """
        stopped = []
        with self._locked():
            state = self._read_state()
            if (nodes := self.cluster) is not None:
                stopped += nodes.stop()
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
        if (nodes := self.cluster) is not None:  # one "nats" line: running while any node runs
            running = [n for n in nodes.status() if n.running]
            result.append(ServerStatus("nats", bool(running), None, nodes.url if running else None))
        for name, server in (("nats", self.nats), ("postgres", self.postgres)):
            if name == "nats" and nodes is not None:
                continue
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
