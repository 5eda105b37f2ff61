"""``python -m tracks.bench.footprint --waves N``: each wave's throughput, latency, RSS and bytes per run."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Servers
from tracks.bench.footprint import measure


async def test_growth_waves(servers: Servers, tmp_path: Path) -> None:
    r = await measure(servers.nats_url, servers.database_url, 3, tmp_path, waves=2, vacuum=True)
    assert r["runs"] == 6 and [w["runs"] for w in r["waves"]] == [3, 6]
    for wave in r["waves"]:
        assert wave["runs_per_s"] > 0 and wave["p99_ms"] >= wave["p50_ms"] > 0
        assert wave["rss_mb"] > 0 and wave["pg_bytes_per_run"] > 0 and wave["tracks_bytes_per_run"] > 0
    assert r["streams"]["TRACKS"]["messages"] > 0
    kinds = {(rel["table_name"], rel["kind"]) for rel in r["relations"]}
    assert ("track_steps", "heap") in kinds and ("processing_logs", "index") in kinds
    assert {rel["name"] for rel in r["relations"]} >= {"processing_logs_event_id", "track_steps_pkey"}
    assert r["columns"]["track_steps"]["output"] > 0 and r["payloads"]["outputs_text"] > 0
