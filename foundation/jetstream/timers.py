"""Deadlines for many short waits at once: one timer per event loop instead of one per wait.

Every step has a time limit and every event publish waits for its PubAck with a timeout.
``asyncio.timeout`` costs a timer, a context object and a heap push and pop per wait, a
measurable share of a step's CPU at thousands of steps a second (``tracks bench``). Here a
deadline is an entry in a set, and one timer, running only while deadlines are armed, looks
every ``TICK_S`` for those past due and cancels their task or future. A deadline therefore
fires up to ``TICK_S`` late, which is noise next to limits of seconds. Cancellations are
told apart from any other by :attr:`Deadline.fired`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

__all__ = ["TICK_S", "Deadline", "Deadlines"]

TICK_S = 0.05


class Cancellable(Protocol):
    def cancel(self, msg: object = None) -> bool: ...


class Deadline:
    __slots__ = ("at", "fired", "target")

    def __init__(self, target: Cancellable, at: float) -> None:
        self.target = target
        self.at = at
        self.fired = False
        """The deadline passed and cancelled the target (which had not finished by then)."""


class Deadlines:
    """The running loop's deadlines: :meth:`current`, then :meth:`arm` and :meth:`disarm`."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._armed: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None

    _last: Deadlines | None = None
    """The most recently used loop's, checked first (a weak-dict lookup per wait is measurable)."""

    @classmethod
    def current(cls) -> Deadlines:
        loop = asyncio.get_running_loop()
        last = cls._last
        if last is not None and last._loop is loop:
            return last
        deadlines = cls._by_loop.get(loop)
        if deadlines is None:
            deadlines = cls._by_loop[loop] = cls(loop)
        cls._last = deadlines
        return deadlines

    def arm(self, target: Cancellable, after_s: float) -> Deadline:
        """Cancel ``target`` (a task or a future) unless disarmed within ``after_s`` seconds."""
        deadline = Deadline(target, self._loop.time() + after_s)
        self._armed.add(deadline)
        if self._timer is None:
            self._timer = self._loop.call_later(TICK_S, self._check)
        return deadline

    def disarm(self, deadline: Deadline) -> None:
        self._armed.discard(deadline)

    @property
    def armed(self) -> int:
        return len(self._armed)

    def _check(self) -> None:
        now = self._loop.time()
        for deadline in [d for d in self._armed if d.at <= now]:
            self._armed.discard(deadline)
            deadline.fired = deadline.target.cancel()
        self._timer = self._loop.call_later(TICK_S, self._check) if self._armed else None
