"""Garbage-collector settings for a long-running actor process.

Measured with ``tracks bench`` (20,000 four-step workflows in one process): CPython's default
thresholds (700, 10, 10) spent about a quarter of the process's CPU in the collector, mostly
in full collections that walk every object the process holds: at a few thousand steps a
second, the in-flight messages, futures and spans of the moment trigger them again and again.
Freezing what start-up created (modules, settings, the runtime itself) takes it out of every
collection; a larger first threshold lets the short-lived objects of a step die by reference
counting before the collector looks at them. Reference cycles are still collected.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]

THRESHOLDS = (50_000, 20, 100)
_tuned = False


def tune_gc() -> bool:
    """Freeze the start-up heap and raise the thresholds, once per process; ``True`` if done now."""
    global _tuned
    if _tuned:
        return False
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    _tuned = True
    return True
