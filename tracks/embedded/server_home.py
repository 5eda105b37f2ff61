"""Where PostgreSQL's server user finds what it cannot reach: ``/var/lib/tracks-pg``.

As root the embedded PostgreSQL runs as the system user ``tracks-pg``. Binaries it cannot reach
(a venv inside a private directory) are hard-linked or copied to ``pginstall-<key>/``, clusters
it cannot reach live in ``clusters/cluster-*`` behind a ``pgdata`` symlink in the data dir, and
both are swept once nothing uses them. No directory of the user's is ever chmod-ed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tracks.embedded._process import as_user, pid_alive

__all__ = [
    "SERVER_HOME",
    "SWEEP_GRACE_S",
    "SYSTEM_USER",
    "bin_dir_for",
    "link_or_copy",
    "prepare_home",
    "sweep",
    "sweep_copies",
    "user_can",
]

log = logging.getLogger("tracks.embedded.postgres")

SYSTEM_USER = "tracks-pg"
SERVER_HOME = Path("/var/lib/tracks-pg")
"""As root: what the server user cannot reach where it is (root-owned, 0755; clusters/ is its own)."""
SWEEP_GRACE_S = 60.0
"""A cluster directory younger than this is never swept: its link may be about to be made."""


def bin_dir_for(user: pwd.struct_passwd | None, source_bin: Path) -> Path:
    """pgserver's ``bin``, or (when the server user cannot reach it) a copy under ``/var/lib``.

    The binaries find their libraries through ``$ORIGIN/../../../pgserver.libs``, so the copy
    keeps pgserver's layout: ``pginstall-<key>/pgserver/pginstall`` beside ``pgserver.libs``.
    Files are hard-linked when they can be, so a copy usually takes no space.
    """
    pginstall = source_bin.parent
    if user is None or user_can(user, "x", source_bin / "postgres", pginstall / "lib", pginstall / "share"):
        return source_bin
    binary = (source_bin / "postgres").stat()
    origin = f"{pginstall.resolve()}:{binary.st_size}:{binary.st_mtime_ns}"
    dest = SERVER_HOME / f"pginstall-{hashlib.sha256(origin.encode()).hexdigest()[:12]}"
    if not dest.is_dir():
        prepare_home(pginstall)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=SERVER_HOME))
        try:
            shutil.copytree(
                pginstall,
                tmp / "pgserver" / "pginstall",
                symlinks=True,
                ignore=shutil.ignore_patterns("include"),
                copy_function=link_or_copy,
            )
            libs = pginstall.parent.parent / "pgserver.libs"
            if libs.is_dir():
                shutil.copytree(libs, tmp / "pgserver.libs", symlinks=True, copy_function=link_or_copy)
            (tmp / "source").write_text(str(pginstall.resolve()))
            tmp.chmod(0o755)
            with contextlib.suppress(OSError):  # another process made the same copy meanwhile
                tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():
            raise RuntimeError(f"could not copy the PostgreSQL binaries to {dest}")
        log.warning(
            "PostgreSQL runs as user %s, which cannot reach %s (a parent directory is private): "
            "it runs from a copy in %s",
            SYSTEM_USER,
            pginstall,
            dest,
        )
        sweep_copies(keep=dest)
    return dest / "pgserver" / "pginstall" / "bin"


def user_can(user: pwd.struct_passwd, flags: str, *paths: Path) -> bool:
    """Whether ``user`` passes ``test -<flag>`` on every path: asked of the kernel, as that user."""
    tests = " && ".join(f'test -{flag} "${i}"' for i in range(1, len(paths) + 1) for flag in flags)
    done = subprocess.run(
        ["/bin/sh", "-c", tests, "sh", *map(str, paths)],
        capture_output=True,
        check=False,
        **as_user(user),
    )
    return done.returncode == 0


def prepare_home(unreachable: Path) -> None:
    """``/var/lib/tracks-pg``: root's, readable by all, written by nobody else; or a one-line refusal."""
    try:
        SERVER_HOME.mkdir(mode=0o755, parents=True, exist_ok=True)
        info = SERVER_HOME.stat()
    except OSError as exc:
        raise RuntimeError(
            f"PostgreSQL runs as user {SYSTEM_USER} when tracks runs as root, and it cannot reach "
            f"{unreachable} (a parent directory is private), nor could {SERVER_HOME} be made for it "
            f"({exc.strerror}): run tracks as another user, or let {SYSTEM_USER} traverse the "
            "parent directories (chmod o+x)"
        ) from None
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise RuntimeError(
            f"{SERVER_HOME} must be owned by root and writable by nobody else (it holds the "
            f"PostgreSQL binaries {SYSTEM_USER} runs): fix or remove it"
        )


def link_or_copy(src: str, dst: str) -> object:
    try:
        os.link(src, dst)
    except OSError:
        return shutil.copy2(src, dst)
    return dst


def sweep(clusters: Path) -> None:
    """Delete clusters whose data dir no longer links to them and whose server is not running."""
    for home in clusters.iterdir():
        try:
            if time.time() - home.stat().st_mtime < SWEEP_GRACE_S:
                continue  # maybe being made: its link may not be there yet
        except OSError:
            continue  # deleted meanwhile
        try:
            origin: Path | None = Path((home / "origin").read_text())
        except OSError:
            origin = None  # never finished: its maker died before writing where it belongs
        if origin is not None and origin.is_symlink() and Path(os.readlink(origin)) == home / "pgdata":
            continue
        try:
            pid: int | None = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        if pid_alive(pid):
            continue
        log.info("deleting %s: the data dir that linked to it (%s) is gone", home, origin)
        shutil.rmtree(home, ignore_errors=True)


def sweep_copies(keep: Path) -> None:
    """Delete copies of binaries whose source is gone and that no process runs from."""
    running = set()
    for exe in Path("/proc").glob("[0-9]*/exe"):
        with contextlib.suppress(OSError):
            running.add(os.readlink(exe))
    for copy in SERVER_HOME.glob("pginstall-*"):
        try:
            source = Path((copy / "source").read_text())
        except OSError:
            continue
        if copy == keep or source.exists() or any(exe.startswith(f"{copy}/") for exe in running):
            continue
        shutil.rmtree(copy, ignore_errors=True)
