"""Limits as declared: ``Limit("freee", rate="3/s")``, and a track's requirements drawn from them.

A limit is held across every replica (its state lives in PostgreSQL, :mod:`actors.flow.store`):
``rate="N/s"`` (or ``/m``, ``/h``) admits at most N starts in any window of that length;
``max_running=N`` admits at most N steps running at once. ``per_key=True`` holds the limit
separately for each key a track computes from its input (``TrackOptions.key``).

A named limit is defined once (the first ``Limit(...)`` of that name, anywhere in the process)
and drawn from by every track that names it: ``TrackOptions(limits=["freee"])`` or
``limits=[FREEE]``. Defining the same name twice with different values is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors.errors import WorkflowError

if TYPE_CHECKING:
    from actors.track import Track

__all__ = ["Limit", "Requirement", "defined", "key_limit_name", "limits_of", "parse_rate", "requirements_of"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(s|m|h)\s*$")
_defined: dict[str, Limit] = {}


def parse_rate(text: str) -> tuple[int, float]:
    """``"3/s"`` → ``(3, 1.0)``; ``"100/m"`` → ``(100, 60.0)``; ``"5/10s"`` → ``(5, 10.0)``."""
    match = _RATE.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise WorkflowError(f"rate {text!r} must look like '3/s', '100/m' or '1000/h' (a count > 0 per unit)")
    factor = float(match.group(2)) if match.group(2) else 1.0
    if factor <= 0:
        raise WorkflowError(f"rate {text!r}: the period must be > 0")
    return int(match.group(1)), factor * _UNITS[match.group(3)]


@dataclass(frozen=True)
class Limit:
    name: str
    rate: str | None = None
    max_running: int | None = None
    per_key: bool = False

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise WorkflowError(f"limit name {self.name!r} must be 1 to 200 characters")
        if self.rate is None and self.max_running is None:
            raise WorkflowError(
                f"limit {self.name!r} sets neither rate nor max_running: it would limit nothing"
            )
        if self.rate is not None:
            parse_rate(self.rate)
        if self.max_running is not None and self.max_running <= 0:
            raise WorkflowError(f"limit {self.name!r}: max_running must be > 0, got {self.max_running}")
        known = _defined.setdefault(self.name, self)
        if known != self:
            raise WorkflowError(
                f"limit {self.name!r} is defined twice with different values ({known} and {self}): "
                "define it once and name it in each track"
            )

    @property
    def rate_n(self) -> int | None:
        return parse_rate(self.rate)[0] if self.rate else None

    @property
    def rate_period_s(self) -> float | None:
        return parse_rate(self.rate)[1] if self.rate else None


def defined(name: str) -> Limit:
    try:
        return _defined[name]
    except KeyError:
        raise WorkflowError(
            f"limit {name!r} is not defined: declare it once, e.g. Limit({name!r}, rate='3/s')"
        ) from None


@dataclass(frozen=True)
class Requirement:
    """One limit a step draws from, for one key ('' when the limit is not per key)."""

    limit: Limit
    key: str

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.limit.name, self.key)


def limits_of(track: Track) -> list[Limit]:
    """Every limit the track draws from: its own (``track:<name>``, ``track:<name>:key``) and named ones."""
    o = track.options
    found: list[Limit] = []
    if o.rate_limit is not None or o.max_running is not None:
        found.append(_own(f"track:{track.name}", o.rate_limit, o.max_running, per_key=False))
    per_key_running = o.max_running_per_key or (1 if o.on_conflict else None)  # singleton per key
    if o.key_rate_limit is not None or per_key_running is not None:
        found.append(_own(key_limit_name(track.name), o.key_rate_limit, per_key_running, per_key=True))
    for item in o.limits:
        found.append(item if isinstance(item, Limit) else defined(item))
    return found


def key_limit_name(track: str) -> str:
    return f"track:{track}:key"


def _own(name: str, rate: str | None, max_running: int | None, *, per_key: bool) -> Limit:
    _defined.pop(name, None)  # a track's own limit follows its options (a test may redeclare it)
    return Limit(name, rate=rate, max_running=max_running, per_key=per_key)


def requirements_of(limits: Sequence[Limit], key: str) -> list[Requirement]:
    """Sorted by (name, key): the order every acquirer locks them in."""
    return sorted((Requirement(lim, key if lim.per_key else "") for lim in limits), key=lambda r: r.sort_key)
