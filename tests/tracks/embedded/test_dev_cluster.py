"""``tracks dev up --cluster 3``: three nats-servers and PostgreSQL; status names each node and
the TRACKS leader; one node stopped and started again by name; ``dev down`` stops them all."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from nats.js.api import StreamConfig

from foundation.connections import connect_nats
from foundation.settings import load_settings
from tests.support.actor_process import REPO, tracks_command
from tracks.embedded import EmbeddedStack
from tracks.embedded._process import pid_alive
from tracks.endpoints import with_endpoints


def _tracks(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKS_")}
    env["TRACKS_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [*tracks_command(), "dev", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=90
    )


def _nodes(data_dir: Path) -> list[dict[str, object]]:
    done = _tracks(data_dir, "status", "--json")
    assert done.returncode == 0, done.stderr
    return [row for row in map(json.loads, done.stdout.splitlines()) if row.get("cluster") == "tracks"]


async def test_dev_up_cluster_status_stop_start_down(tmp_path: Path) -> None:
    data = tmp_path / "data"
    try:
        up = _tracks(data, "up", "--cluster", "3")
        assert up.returncode == 0, up.stderr
        printed = dict(line.split("=", 1) for line in up.stdout.splitlines())
        assert printed["TRACKS_STREAM_REPLICAS"] == "3"
        urls = printed["TRACKS_NATS_URL"].split(",")
        assert len(urls) == 3 and all(u.startswith("nats://127.0.0.1:") for u in urls)
        assert not {":4222", ":6222"} & {u[u.rindex(":") :] for u in urls}
        assert printed["TRACKS_DATABASE_URL"].startswith("postgresql://")

        settings = load_settings(nats_url=printed["TRACKS_NATS_URL"], data_dir=data)
        nc = await connect_nats(settings, settings.nats_url or "", name="test-dev-cluster")
        try:
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name="TRACKS", subjects=["tracks.>"], num_replicas=3))
            nodes = _nodes(data)
            assert [n["name"] for n in nodes] == ["tracks-1", "tracks-2", "tracks-3"]
            assert all(n["running"] and n["pid"] and n["url"] in urls for n in nodes)
            leader = (await js.stream_info("TRACKS")).cluster
            assert leader is not None
            assert [n["name"] for n in nodes if n["leader"]] == [leader.leader]
        finally:
            await nc.close()

        text = _tracks(data, "status").stdout
        assert "leads TRACKS" in text and "tracks-2  running pid=" in text

        stopped = _tracks(data, "stop", "2")
        assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped tracks-2", stopped
        pid_2 = next(n["pid"] for n in nodes if n["name"] == "tracks-2")
        assert isinstance(pid_2, int) and not pid_alive(pid_2)
        assert [n["running"] for n in _nodes(data)] == [True, False, True]
        unknown = _tracks(data, "stop", "tracks-9")
        assert unknown.returncode == 1
        assert (
            "no node 'tracks-9' in cluster 'tracks' (nodes: tracks-1, tracks-2, tracks-3)" in unknown.stderr
        )

        started = _tracks(data, "start", "tracks-2")
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("started tracks-2 pid=") and urls[1] in started.stdout
        assert [n["running"] for n in _nodes(data)] == [True, True, True]

        # a command run without settings uses the cluster at its replicas (never moves R3 back)
        implicit, _ = with_endpoints(load_settings(data_dir=data))
        assert (implicit.nats_url, implicit.stream_replicas) == (printed["TRACKS_NATS_URL"], 3)
        explicit, _ = with_endpoints(load_settings(data_dir=data, stream_replicas=1))
        assert explicit.stream_replicas == 1

        again = _tracks(data, "up")  # the data dir remembers the cluster: the same URLs, reused
        assert again.returncode == 0 and again.stdout == up.stdout, again.stderr
    finally:
        down = _tracks(data, "down")
        EmbeddedStack(data).postgres.delete_data()
    assert down.stdout.strip() == "stopped: tracks-1, tracks-2, tracks-3, postgres", down
    assert not any(n["running"] for n in _nodes(data))
