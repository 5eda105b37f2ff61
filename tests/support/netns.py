"""A JetStream cluster whose nodes each run in a network namespace, for partition tests.

Each node listens on ``10.<a>.<b>.<i>`` inside its own namespace, joined to the others and to
this (root) namespace by a bridge, whose address here is ``.254``: test processes reach every
node as clients. :meth:`NetnsCluster.isolate` cuts one node off from its peers (blackhole routes
to them inside its namespace: no reset, its packets just vanish, as in a real partition) while
clients still reach it; :meth:`NetnsCluster.heal` joins it again. Needs root and ``ip``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tracks.embedded import NatsCluster, NatsServer

__all__ = ["NetnsCluster", "netns_available", "netns_cluster"]

_CLIENT_PORT = 14222
_ROUTE_PORT = 16222


def netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"t15probe{uuid.uuid4().hex[:4]}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    return True


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


class NetnsCluster(NatsCluster):
    """A :class:`NatsCluster` whose nodes are in namespaces ``namespaces[i]`` at ``hosts[i]``."""

    def __init__(self, root: Path, hosts: list[str], namespaces: list[str]) -> None:
        super().__init__(root, len(hosts))
        self.hosts = dict(zip((f"{self.name}-{i + 1}" for i in range(len(hosts))), hosts, strict=True))
        self.namespaces = dict(zip(self.hosts, namespaces, strict=True))
        self.nodes = [
            NatsServer(
                self.root / name,
                port=_CLIENT_PORT,
                server_name=name,
                cluster_name=self.name,
                cluster_port=_ROUTE_PORT,
                routes=tuple(f"nats://{h}:{_ROUTE_PORT}" for n, h in self.hosts.items() if n != name),
                host=host,
                netns=self.namespaces[name],
            )
            for name, host in self.hosts.items()
        ]
        self.isolated: set[str] = set()

    def _peers(self, name: str) -> list[str]:
        return [h for n, h in self.hosts.items() if n != name]

    def isolate(self, name: str) -> None:
        """Cut ``name`` off from the other nodes (clients still reach it)."""
        for peer in self._peers(name):
            _ip("route", "add", "blackhole", f"{peer}/32", netns=self.namespaces[name])
        self.isolated.add(name)

    def heal(self, name: str) -> None:
        for peer in self._peers(name):
            _ip("route", "del", "blackhole", f"{peer}/32", netns=self.namespaces[name])
        self.isolated.discard(name)


@contextmanager
def netns_cluster(root: Path, n: int = 3) -> Iterator[NetnsCluster]:
    """``n`` nodes in namespaces of their own on a fresh bridge; all removed after."""
    tag = uuid.uuid4().hex[:5]
    subnet = f"10.{random.randint(100, 250)}.{random.randint(1, 250)}"
    bridge = f"t15b{tag}"
    with ExitStack() as cleanup:
        _ip("link", "add", bridge, "type", "bridge")
        cleanup.callback(subprocess.run, ["ip", "link", "del", bridge], capture_output=True)
        _ip("addr", "add", f"{subnet}.254/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        namespaces, hosts = [], []
        for i in range(1, n + 1):
            ns, veth, peer = f"t15n{tag}{i}", f"t15v{tag}{i}", f"t15p{tag}{i}"
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=10)
            cleanup.callback(subprocess.run, ["ip", "netns", "del", ns], capture_output=True)
            _ip("link", "set", "lo", "up", netns=ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", ns)
            _ip("link", "set", veth, "master", bridge)
            _ip("link", "set", veth, "up")
            _ip("addr", "add", f"{subnet}.{i}/24", "dev", peer, netns=ns)
            _ip("link", "set", peer, "up", netns=ns)
            namespaces.append(ns)
            hosts.append(f"{subnet}.{i}")
        cluster = NetnsCluster(root / "netns-cluster", hosts, namespaces)
        cleanup.callback(cluster.stop)
        cluster.start()
        cluster.wait_ready()
        yield cluster
