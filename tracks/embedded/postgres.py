"""A PostgreSQL server run from the ``pgserver`` wheel's binaries.

We run ``initdb`` and ``postgres`` ourselves rather than through pgserver's handle API so
that the port, the lifecycle (stop, kill, restart for chaos tests) and the data dir are ours.

PostgreSQL refuses to run as root; as root we run it as a dedicated system user
(``tracks-pg``, with its own group and no other). That user must reach the binaries and the
cluster, and we never change the permissions of the directories around them (a home, a
``mktemp -d`` directory): what it cannot reach is placed under ``/var/lib/tracks-pg``, and a
warning says so. The binaries are linked (or copied) there; a cluster whose data dir it
cannot reach lives there too, behind a ``pgdata`` symlink in the data dir, and is deleted
once that link is gone (see :func:`sweep`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tracks.embedded._process import as_user, cwd_of, free_port, pid_alive, spawn, stop_pid, wait_for_port
from tracks.embedded.server_home import (
    SERVER_HOME,
    SYSTEM_USER,
    bin_dir_for,
    prepare_home,
    sweep,
    user_can,
)

__all__ = ["EMBEDDED_SETTINGS", "PostgresServer", "postgres_bin_dir"]

log = logging.getLogger(__name__)

DATABASE = "tracks"


def postgres_bin_dir() -> Path:
    """``pgserver/pginstall/bin`` without importing pgserver (its import has side effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "no PostgreSQL binaries: install the embedded extra (pip install 'tracks[embedded]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


EMBEDDED_SETTINGS = {
    "shared_buffers": "256MB",
    "wal_buffers": "16MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "pglz",
}
"""The embedded server's settings for a small machine (README "Sizing"); durability is unchanged.

PostgreSQL's defaults (128 MB of buffers, a checkpoint every 1 GB of WAL or 5 minutes) made a
long run of steps checkpoint every 8-27 s, each checkpoint followed by full-page images of
every page touched again (36-78 % of the WAL), and the random-keyed indexes fell out of the
buffers: fewer checkpoints, compressed page images, and twice the buffers. A server of your own
keeps its own settings."""


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in ``data_dir``; ``fast`` trades crash safety for test speed."""

    data_dir: Path
    port: int = 0
    fast: bool = False
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _bin: Path | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def pgdata(self) -> Path:
        """The cluster; as root, maybe a symlink to one the server user can reach."""
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def adopt_running(self) -> bool:
        """Take over a postmaster already serving this data dir (e.g. after a lost state file)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return False
        if not pid_alive(pid):
            return False
        cwd = cwd_of(pid)  # a postmaster works in its cluster; else the pid was reused
        if cwd is not None and cwd != self.pgdata.resolve():
            return False
        self.pid, self.port = pid, port
        return True

    def start(self, timeout: float = 30.0, *, daemon: bool = False) -> None:
        """Start (or adopt) the server; one that fails to come up is stopped before raising."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        self._bin = bin_dir_for(user, postgres_bin_dir())
        cluster = self._cluster_for(user)
        if self.adopt_running():
            self._wait_ready(user, timeout)
            self._ensure_database(user)
            return
        if not (cluster / "PG_VERSION").exists():
            self._initdb(user, cluster)
        self.port = self.port or free_port()
        cmd = [
            str(self._bin / "postgres"),
            "-D",
            str(cluster),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(cluster),
            "-c",
            "max_connections=200",
            *(arg for name, value in EMBEDDED_SETTINGS.items() for arg in ("-c", f"{name}={value}")),
        ]
        if self.fast:
            cmd += ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        self.log_file.touch()
        if user is not None:
            os.chown(self.log_file, user.pw_uid, user.pw_gid)
        self.pid, self._proc = spawn(cmd, self.log_file, daemon=daemon, user=user)
        try:
            wait_for_port(self.port, timeout, "PostgreSQL", f" (see {self.log_file})")
            self._wait_ready(user, timeout)
            self._ensure_database(user)
        except BaseException:
            self.stop()
            raise

    def _ensure_database(self, user: pwd.struct_passwd | None) -> None:
        """Idempotent: a start interrupted after initdb left the cluster without our database."""
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", user)
        if exists.strip() != "1":
            self._psql(f"CREATE DATABASE {DATABASE}", user)

    def _wait_ready(self, user: pwd.struct_passwd | None, timeout: float) -> None:
        """An open port is not enough: the server answers "starting up" for a moment."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._psql("SELECT 1", user)
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline or not self.running:
                    raise RuntimeError(
                        f"PostgreSQL did not accept connections (see {self.log_file})"
                    ) from None
                time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT): active transactions are rolled back, data stays consistent."""
        if self.pid is not None:
            stop_pid(self.pid, sig=signal.SIGINT, timeout=timeout)
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self.pid = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def delete_data(self) -> None:
        """Stop the server and delete its cluster, also one kept under ``/var/lib/tracks-pg``."""
        self.stop()
        if self.pgdata.is_symlink():
            home = Path(os.readlink(self.pgdata)).parent
            if home.parent == SERVER_HOME / "clusters":
                shutil.rmtree(home, ignore_errors=True)
            self.pgdata.unlink()
        else:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    @property
    def running(self) -> bool:
        return pid_alive(self.pid)

    def _initdb(self, user: pwd.struct_passwd | None, cluster: Path) -> None:
        assert self._bin is not None
        cluster.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(cluster, user.pw_uid, user.pw_gid)
        subprocess.run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(cluster),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **as_user(user),
        )

    def _psql(self, sql: str, user: pwd.struct_passwd | None) -> str:
        assert self._bin is not None
        done = subprocess.run(
            [
                str(self._bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            **as_user(user),
        )
        return done.stdout

    def _run_as(self) -> pwd.struct_passwd | None:
        """As root: the system user that owns the cluster (created on first use)."""
        if os.geteuid() != 0:
            return None
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True
            )
            user = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        return user

    def _cluster_for(self, user: pwd.struct_passwd | None) -> Path:
        """The directory the server runs on: ``pgdata``, or where it leads when the user can't reach it."""
        if user is None:
            return self.pgdata
        clusters = SERVER_HOME / "clusters"
        if clusters.is_dir():
            sweep(clusters)
        if self.pgdata.is_symlink():
            target = Path(os.readlink(self.pgdata))
            if target.parent.is_dir():
                return target
            self.pgdata.unlink()  # its directory was deleted: start over with a new cluster
        elif user_can(user, "xw", self.data_dir):
            return self.pgdata
        elif self.pgdata.exists():
            raise RuntimeError(
                f"PostgreSQL runs as user {SYSTEM_USER} when tracks runs as root, and it cannot "
                f"reach the cluster in {self.pgdata} (a parent directory is private): run tracks "
                "as another user, or let that user traverse the parent directories (chmod o+x)"
            )
        prepare_home(self.data_dir)
        clusters.mkdir(mode=0o700, exist_ok=True)
        os.chown(clusters, user.pw_uid, user.pw_gid)
        home = Path(tempfile.mkdtemp(prefix="cluster-", dir=clusters))
        os.chown(home, user.pw_uid, user.pw_gid)
        (home / "origin").write_text(str(self.pgdata.absolute()))
        target = home / "pgdata"
        self.pgdata.symlink_to(target)
        log.warning(
            "PostgreSQL runs as user %s, which cannot reach %s (a parent directory is private): "
            "its cluster is in %s, linked from %s",
            SYSTEM_USER,
            self.data_dir,
            target,
            self.pgdata,
        )
        return target
