"""``tracks bench`` runs end to end at a tiny size and leaves nothing behind in streams or tables."""

from __future__ import annotations

import asyncpg
import pytest
from nats.js import JetStreamContext

from foundation.settings import Settings
from subjects import DLQ_STREAM, STREAM
from tracks.bench import BenchConfig, run_bench
from tracks.bench.faststream_chain import MISSING, available

pytestmark = pytest.mark.slow  # kills or restarts servers: CI runs it, `make test-fast` leaves it out


async def _left_behind(js: JetStreamContext, run: str) -> list[str]:
    """Subjects still holding a message of this benchmark run, in either stream."""
    left = []
    for stream, root in ((STREAM, "tracks.>"), (DLQ_STREAM, "dlq.>")):
        info = await js.stream_info(stream, subjects_filter=root)
        left += [subject for subject in info.state.subjects or {} if run in subject]
    return left


async def test_bench_measures_every_scenario_and_cleans_up(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    cfg = BenchConfig(n=300, paced_n=40, paced_rates=(100.0, 150.0), repeat=2, processes=True, limits=True)
    results = await run_bench(settings, cfg)
    for scenario in (results["linear"], results["diamond"]):
        assert scenario["raw"]["completed"] == 300 and scenario["runtime"]["completed"] == 300
        assert scenario["ratio"] > 0
    assert [p["rate"] for p in results["linear"]["paced"]] == [100.0, 150.0]
    assert all(p["runtime"]["completed"] == 40 for p in results["linear"]["paced"])
    for p in results["linear"]["paced"]:  # where the runtime's paced time went, per wait of a step
        assert {"delivery", "claim", "outcome", "PubAck"} <= set(p["waits"]), p["waits"]
        assert p["waits"]["claim"]["n"] >= 4 * 40 and p["waits"]["delivery"]["n"] == 4 * 40
    assert results["linear"]["runtime"]["rss_mb"] > 0
    procs = results["linear"]["processes"]  # one `tracks actor run` process per track
    assert procs["burst"]["completed"] == 300 and procs["burst"]["rss_mb"] > 0
    assert [p["runtime"]["completed"] for p in procs["paced"]] == [40, 40]
    fast = results["linear"]["faststream"]
    assert fast.get("skipped") == MISSING if not available() else fast["completed"] == 300
    assert len(results["linear"]["ratios"]) == 2 and results["linear"]["ratio"] in results["linear"]["ratios"]
    assert [run["ratio"] for run in results["linear"]["runs"]] == results["linear"]["ratios"]
    limits = results["limits"]  # flow control: its cost beside the unlimited chain, the rate held
    assert limits["max_running"]["completed"] == 300 and limits["per_key"]["completed"] == 300
    assert "cost_pct" in limits["max_running"] and "cost_pct" in limits["per_key"]
    rated = limits["rate_limit"]
    assert rated["completed"] == 300 and rated["limit_per_s"] == 100 and rated["achieved_per_s"] > 0
    failures = results["failures"]
    assert failures["failure_to_successful_retry_ms"]["n"] == failures["runs"]
    assert failures["last_failure_to_dead_letter_ms"]["n"] == failures["runs"]
    assert await _left_behind(js, results["run"]) == []
    prefix = f"{results['run']}%"
    for table, column in (
        ("processing_logs", "track_id"),
        ("track_steps", "track_id"),
        ("workflow_runs", "workflow"),
    ):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column} LIKE $1", prefix) == 0
    assert not [c.name for c in await js.consumers_info(STREAM) if c.name.startswith(results["run"])]
