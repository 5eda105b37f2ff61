"""What the strategies share: :class:`_Names` (correlation IDs unique to a batch), ``Build`` (a drawn
case, made into a :class:`Hostile` once the batch's names are known), the builders of plain, dead
and good triggers on ``tracks.<up>.run.<cid>``, :func:`pick`, and the JSON value strategies.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import strategies as st

from tests.support.apps.fuzz_workflow import FuzzPair
from tests.support.hostile.oracle import reference_verdict
from tests.support.hostile.verdicts import COMPLETED, DEAD, Hostile

T = TypeVar("T")


@dataclass
class _Names:
    pair: FuzzPair
    max_payload: int
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def cid(self, kind: str) -> str:
        """Unique to this batch's workflow too: runs are keyed by correlation ID alone, and the
        suite's batches share one database."""
        tag = self.pair.up.removesuffix("-up")[-10:]
        return f"{kind.replace('_', '')[:8]}-{tag}-{next(self.counter)}"

    @property
    def up(self) -> str:
        return self.pair.up

    @property
    def down(self) -> str:
        return self.pair.down


Build = Callable[[_Names], Hostile]


def _plain(kind: str, variant: str, body: bytes, *, headers: dict[str, str] | None = None) -> Build:
    """A plain trigger on ``tracks.<up>.run.<cid>``, judged by :func:`reference_verdict`."""

    def build(names: _Names) -> Hostile:
        cid = names.cid(kind)
        expect, reasons = reference_verdict(body)
        return Hostile(
            kind,
            variant,
            f"tracks.{names.up}.run.{cid}",
            body,
            headers,
            expect,
            names.up,
            cid,
            "PoisonMessage" if expect == DEAD else None,
            reasons,
        )

    return build


def _dead(
    kind: str,
    variant: str,
    body: bytes | Callable[[_Names, str], bytes],
    reasons: tuple[str, ...],
    *,
    headers: dict[str, str] | None = None,
    huge: bool = False,
) -> Build:
    """A trigger on ``tracks.<up>.run.<cid>`` that must be dead-lettered for one of ``reasons``."""

    def build(names: _Names) -> Hostile:
        cid = names.cid(kind)
        data = body(names, cid) if callable(body) else body
        return Hostile(
            kind,
            variant,
            f"tracks.{names.up}.run.{cid}",
            data,
            headers,
            DEAD,
            names.up,
            cid,
            "PoisonMessage",
            reasons,
            huge=huge,
        )

    return build


def _good(
    kind: str,
    variant: str,
    body: bytes | Callable[[_Names, str], bytes],
    *,
    headers: dict[str, str] | None = None,
    huge: bool = False,
) -> Build:
    def build(names: _Names) -> Hostile:
        cid = names.cid(kind)
        data = body(names, cid) if callable(body) else body
        return Hostile(
            kind, variant, f"tracks.{names.up}.run.{cid}", data, headers, COMPLETED, names.up, cid, huge=huge
        )

    return build


def _order(n: int, note: str = "") -> bytes:
    return json.dumps({"n": n, "note": note} if note else {"n": n}).encode()


ints = st.integers(min_value=-(2**63), max_value=2**63)
notes = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)

json_scalars = st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | notes
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(notes, inner, max_size=4),
    max_leaves=12,
)


def pick(options: Sequence[T]) -> st.SearchStrategy[T]:
    """One of ``options``, about evenly (``sampled_from`` leans on the first option when hypothesis
    mutates earlier examples)."""
    items = list(options)
    return st.integers(min_value=0, max_value=len(items) * 1000 - 1).map(lambda i: items[i % len(items)])
