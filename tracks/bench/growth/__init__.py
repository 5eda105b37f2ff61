"""``python -m tracks.bench.growth``: cost as the ledger grows to a million runs (:mod:`.bench`),
the tables filled quickly by copies of real runs (:mod:`.clone`)."""

from __future__ import annotations

from tracks.bench.growth.bench import grow, main

__all__ = ["grow", "main"]
