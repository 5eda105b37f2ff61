"""The runtime a handler runs in, for handlers that need its connections (an application's own
tables, starting further runs): ``current_runtime().pool`` / ``.nc`` / ``.payloads``.

Set by :meth:`Runtime.start` before its track loops start, so every step those loops run sees
its own runtime (several runtimes in one process each see theirs).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.runtime.process import Runtime

__all__ = ["current_runtime", "set_current_runtime"]

_current: ContextVar[Runtime | None] = ContextVar("tracks_runtime", default=None)


def current_runtime() -> Runtime:
    """The started runtime this code runs under; outside a step, a clear error."""
    runtime = _current.get()
    if runtime is None:
        raise RuntimeError("no running Runtime here: current_runtime() works inside a track's handler")
    return runtime


def set_current_runtime(runtime: Runtime) -> None:
    _current.set(runtime)
