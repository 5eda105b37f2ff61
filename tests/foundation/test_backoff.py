"""The one back-off helper: exponential, capped, refused when it makes no sense."""

from __future__ import annotations

import pytest

from foundation.backoff import Backoff


def test_doubles_from_first_to_cap_and_stays_there() -> None:
    backoff = Backoff(first_s=0.1, cap_s=1.0)
    assert [round(backoff.next(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.peek() == 1.0


@pytest.mark.parametrize(("first", "cap", "factor"), [(0, 1, 2), (2, 1, 2), (0.1, 1, 0.5)])
def test_nonsense_is_refused(first: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError, match="invalid back-off"):
        Backoff(first, cap, factor)
