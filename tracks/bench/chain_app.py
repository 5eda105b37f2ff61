"""The bench's linear chain as a module ``tracks actor run`` loads: one process per track.

The bench starts ``tracks actor run tracks.bench.chain_app:<track>`` for each track, naming the
chain with ``TRACKS_BENCH_PREFIX`` and its length with ``TRACKS_BENCH_STAGES``.
"""

from __future__ import annotations

import os

from tracks.bench.workflows import linear_workflow

chain = linear_workflow(os.environ["TRACKS_BENCH_PREFIX"], int(os.environ.get("TRACKS_BENCH_STAGES", "4")))
