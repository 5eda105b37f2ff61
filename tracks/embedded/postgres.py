"""A PostgreSQL server run from the ``pgserver`` wheel's binaries.

We run ``initdb`` and ``postgres`` ourselves rather than through pgserver's handle API so
that the port, the lifecycle (stop, kill, restart for chaos tests) and the data dir are ours.
PostgreSQL refuses to run as root; as root we run it as a dedicated system user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._process import free_port, pid_alive, spawn, stop_pid, wait_for_port

__all__ = ["PostgresServer", "postgres_bin_dir"]

_SYSTEM_USER = "tracks-pg"
DATABASE = "tracks"


def postgres_bin_dir() -> Path:
    """``pgserver/pginstall/bin`` without importing pgserver (its import has side effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "no PostgreSQL binaries: install the embedded extra (pip install 'tracks[embedded]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in ``data_dir``; ``fast`` trades crash safety for test speed."""

    data_dir: Path
    port: int = 0
    fast: bool = False
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def pgdata(self) -> Path:
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
        self.pid, self.port = pid, port
        return True

    def start(self, timeout: float = 30.0, *, daemon: bool = False) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        if self.adopt_running():
            self._wait_ready(user, timeout)
            self._ensure_database(user)
            return
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user)
        self.port = self.port or free_port()
        cmd = [
            str(postgres_bin_dir() / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.pgdata),
            "-c",
            "max_connections=200",
        ]
        if self.fast:
            cmd += ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        self.log_file.touch()
        if user is not None:
            os.chown(self.log_file, user.pw_uid, user.pw_gid)
        self.pid, self._proc = spawn(
            cmd,
            self.log_file,
            daemon=daemon,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
        )

        wait_for_port(self.port, timeout, "PostgreSQL", f" (see {self.log_file})")
        self._wait_ready(user, timeout)
        self._ensure_database(user)

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

    @property
    def running(self) -> bool:
        return pid_alive(self.pid)

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)
        subprocess.run(
            [
                str(postgres_bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
        )

    def _psql(self, sql: str, user: pwd.struct_passwd | None) -> str:
        done = subprocess.run(
            [
                str(postgres_bin_dir() / "psql"),
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
            user=user.pw_uid if user else None,
        )
        return done.stdout

    def _run_as(self) -> pwd.struct_passwd | None:
        """As root: a system user that owns the cluster, and paths it can traverse."""
        if os.geteuid() != 0:
            return None
        try:
            user = pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", _SYSTEM_USER], check=True, capture_output=True
            )
            user = pwd.getpwnam(_SYSTEM_USER)
        for path in (self.data_dir.resolve(), postgres_bin_dir().resolve()):
            _allow_traverse(path)
        os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        return user


def _allow_traverse(path: Path) -> None:
    """o+x on every ancestor, so the unprivileged server user can reach ``path``."""
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            part.chmod(mode | stat.S_IXOTH | stat.S_IROTH)
