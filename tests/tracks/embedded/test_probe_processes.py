"""``tracks actor run`` and ``tracks scheduler run`` with TRACKS_HTTP_PORT: the real processes serve
/readyz and /metrics, and stop serving when they exit."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.http import http_get, samples
from tests.support.waiting import eventually
from tracks.embedded._process import free_port


@pytest.mark.parametrize(
    ("command", "targets", "metric"),
    [
        (("actor", "run"), ["tests.support.apps.actor_app"], "tracks_in_flight"),
        (("scheduler", "run"), [], "process_cpu_seconds_total"),
    ],
    ids=["actor", "scheduler"],
)
async def test_a_process_serves_readyz_and_metrics_on_its_port(
    servers: Servers,
    migrated: None,
    js: JetStreamContext,
    tmp_path: Path,
    unique: str,
    command: tuple[str, ...],
    targets: list[str],
    metric: str,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = ActorProcess(
        targets,
        {
            "TRACKS_NATS_URL": servers.nats_url,
            "TRACKS_DATABASE_URL": servers.database_url,
            "TRACKS_HTTP_PORT": str(port),
            "TRACKS_TEST_PREFIX": f"probe-{unique}",
            "TRACKS_SCHEDULER_STANDARD_SCHEDULES": "false",
            "TRACKS_SCHEDULER_NAME_PREFIX": f"nothing-{unique}",
            "TRACKS_SCHEDULER_HISTORY_CONSUMER": f"history-{unique}",
        },
        tmp_path / "process.log",
        command=command,
    )
    process.start()
    try:

        async def ready() -> bool:
            assert process.running, process.output()
            try:
                return (await http_get(f"{base}/readyz", timeout=2))[0] == 200
            except OSError:
                return False

        await eventually(ready, timeout=60, what=f"{' '.join(command)} to be ready")
        status, text = await http_get(f"{base}/metrics")
        assert status == 200
        assert any(name == metric for name, _ in samples(text)), text[:2000]
        process.send(signal.SIGTERM)
        assert await process.wait(30) == 0, process.output()
    finally:
        process.kill()
