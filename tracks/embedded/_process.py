"""What both embedded servers need: free ports, readiness waits, and stopping a pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import closing, suppress
from pathlib import Path

__all__ = ["free_port", "pid_alive", "port_open", "spawn", "stop_pid", "wait_for_port"]

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


def wait_for_port(port: int, timeout: float, what: str, log_hint: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
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


def spawn(
    cmd: list[str],
    log_file: Path,
    *,
    daemon: bool,
    user: int | None = None,
    group: int | None = None,
) -> tuple[int, subprocess.Popen[bytes] | None]:
    """Start ``cmd`` with its output in ``log_file``; return its pid (and handle, unless a daemon).

    A daemon is started by a short-lived shell that backgrounds it and exits: the server is
    re-parented to init and outlives the command that started it, and nothing holds a handle
    to a running child (which Python would warn about when it is dropped).
    """
    if not daemon:
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=user,
                group=group,
            )
        return proc.pid, proc
    # The server's own output goes to the log, so only the shell holds the pipe it prints on.
    script = '"$@" >>"$0" 2>&1 </dev/null & echo $!'
    launcher = subprocess.run(
        ["/bin/sh", "-c", script, str(log_file), *cmd],
        capture_output=True,
        text=True,
        start_new_session=True,
        user=user,
        group=group,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=True,
    )
    pid = int(launcher.stdout.strip())
    return pid, None
