"""Ledger keys: version-7 UUIDs, time-ordered, and distinct in a forked child (random is reseeded)."""

from __future__ import annotations

import multiprocessing
import uuid

from actors.ledger.records import new_event_id


def _ids(n: int) -> list[str]:
    return [new_event_id() for _ in range(n)]


def test_event_ids_are_version_7_and_time_ordered() -> None:
    ids = _ids(2000)
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    stamps = [u.int >> 80 for u in parsed]  # the 48-bit millisecond prefix
    assert stamps == sorted(stamps)


def test_a_forked_child_draws_other_ids() -> None:
    mine = set(_ids(200))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(_ids, [200, 200])
    theirs = set(children[0]) | set(children[1])
    assert len(theirs) == 400 and not mine & theirs
