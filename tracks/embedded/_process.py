"""What both embedded servers need: free ports, readiness waits, and stopping a pid."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import TypedDict

__all__ = [
    "UserArgs",
    "args_of",
    "as_user",
    "cwd_of",
    "free_port",
    "pid_alive",
    "port_open",
    "spawn",
    "stop_pid",
    "wait_for_port",
]

# Never hand out the standard ports: the machines run their own NATS and PostgreSQL there.
_RESERVED = {4222, 5432, 6222, 8222}


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nobody listens on it, else a port the kernel picks."""
    if preferred is not None and preferred not in _RESERVED and not port_open(preferred):
        return preferred
    while True:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED:
            return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(
    port: int, timeout: float, what: str, log_hint: str = "", *, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s{log_hint}")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def cwd_of(pid: int) -> Path | None:
    """The working directory of ``pid``; None when it cannot be known (no /proc, not ours)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def args_of(pid: int) -> list[str] | None:
    """The command line of ``pid``; None when it cannot be known."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [arg.decode(errors="replace") for arg in fh.read().split(b"\0")[:-1]]
    except OSError:
        return None


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal ``pid`` and wait for it to go, escalating to SIGKILL after ``timeout``."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while pid_alive(pid):
        _reap(pid)
        time.sleep(0.05)


def _reap(pid: int) -> None:
    with suppress(ChildProcessError):  # not our child (a daemon started by another process)
        os.waitpid(pid, os.WNOHANG)


class UserArgs(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]
    cwd: str


def as_user(user: pwd.struct_passwd | None) -> UserArgs:
    """``subprocess`` arguments that run a child as ``user``: its uid, its group and no other.

    Without ``group`` and ``extra_groups`` the child would keep root's groups, and a directory
    of root's with group bits ``---`` would stop it even where "others" may pass.
    """
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}


def spawn(
    cmd: list[str],
    log_file: Path,
    *,
    daemon: bool,
    user: pwd.struct_passwd | None = None,
) -> tuple[int, subprocess.Popen[bytes] | None]:
    """Start ``cmd`` with its output in ``log_file``; return its pid (and handle, unless a daemon).

    A daemon is started by a short-lived shell that backgrounds it and exits: the server is
    re-parented to init and outlives the command that started it, and nothing holds a handle
    to a running child (which Python would warn about when it is dropped). The log is opened
    here, so ``user`` (see :func:`as_user`) needs no access to it.
    """
    with open(log_file, "ab") as log:
        if not daemon:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **as_user(user),
            )
            return proc.pid, proc
        # The server writes to the log; only the shell holds the pipe it prints the pid on.
        launcher = subprocess.run(
            ["/bin/sh", "-c", '"$@" 2>&1 </dev/null & echo $! >&2', "sh", *cmd],
            stdout=log,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            timeout=30,
            check=True,
            **as_user(user),
        )
    return int(launcher.stderr.split()[-1]), None
