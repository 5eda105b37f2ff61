"""Alerts: a DLQ backlog over its threshold, a track failing too often; once per interval."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actors import PermanentError, Runtime, TrackContext, TracksClient, Workflow
from actors.failures.alerts import AlertMonitor, failure_rates, load_alert_settings
from foundation.jetstream.publisher import EventPublisher
from foundation.settings import Settings, SettingsError
from tests.conftest import Servers
from tests.support.actor_process import REPO, tracks_command
from tests.support.records import step_statuses
from tests.support.waiting import eventually

NEVER = "1000000000"
"""A DLQ threshold no test reaches: keeps the backlog alert out of tests about failure rates."""


def flaky_workflow(prefix: str) -> Workflow:
    wf = Workflow(f"alerts-{prefix}")
    for name in ("bad", "good"):

        @wf.track(f"{prefix}-{name}")
        async def handler(ctx: TrackContext, job: dict[str, bool]) -> dict[str, bool]:
            if job["fail"]:
                raise PermanentError("upstream API refused")
            return job

    return wf


async def test_failure_rate_alert_from_the_runtime(
    settings: Settings,
    pool: asyncpg.Pool,
    nc: NATS,
    js: JetStreamContext,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3 of 4 steps of ``bad`` fail (75 % > 60 %, 4 outcomes >= min 4): the runtime publishes
    ``tracks.alerts.failure_rate`` with the numbers; ``good`` (1 of 4) does not alert. Judged from
    fewer outcomes than ``min_events`` nothing fires."""
    for var, value in {
        "FAILURE_RATE": "0.6",
        "MIN_EVENTS": "4",
        "INTERVAL_S": "0.2",
        "WINDOW_S": "600",
        "DLQ_THRESHOLD": NEVER,
    }.items():
        monkeypatch.setenv(f"TRACKS_ALERT_{var}", value)
    bad, good = f"{unique}-bad", f"{unique}-good"
    seen: list[dict[str, object]] = []

    async def collect(msg: Msg) -> None:
        seen.append(json.loads(msg.data))

    sub = await nc.subscribe("tracks.alerts.failure_rate", cb=collect)
    client = TracksClient(js)
    try:
        async with Runtime(list(flaky_workflow(unique)), settings=settings):
            for track, failures in ((bad, 3), (good, 1)):
                for n in range(4):
                    await client.trigger(track, {"fail": n < failures})

            async def alerted() -> bool:
                return any(a["labels"].get("track") == bad for a in seen)

            await eventually(alerted, timeout=20, what="a failure-rate alert for the bad track")
            assert len(await step_statuses(pool, good)) == 4
            await asyncio.sleep(0.5)  # a few more checks: good must still not alert
    finally:
        await sub.unsubscribe()

    alert = next(a for a in seen if a["labels"].get("track") == bad)
    details = alert["details"]
    assert (alert["kind"], details["rate"], details["failed"], details["total"], details["window"]) == (
        "failure_rate",
        0.75,
        3,
        4,
        600.0,
    )
    assert "3 of 4 steps failed" in str(alert["summary"])
    assert (alert["severity"], alert["labels"]["alertname"]) == ("warning", "tracks_failure_rate")
    assert alert["startsAt"] and alert["source"]
    assert all(a["labels"].get("track") != good for a in seen)
    strict = load_alert_settings(min_events=5, failure_rate=0.6, window_s=600)
    assert await failure_rates(pool, strict, [bad, good]) == []


async def test_dlq_backlog_alert_is_published_once_per_interval_across_replicas(
    pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """A DLQ holding more than the threshold fires ``dlq_backlog``; two monitors (replicas) checking
    in the same interval publish it once: the second publish is a duplicate the stream drops."""
    held = int((await js.stream_info("DLQ")).state.messages)
    await js.publish(f"dlq.{unique}-t.x", b"{}")
    try:
        alert_settings = load_alert_settings(dlq_threshold=held, interval_s=3600, min_events=1_000_000)
        replicas = [AlertMonitor(js, pool, EventPublisher(js), alert_settings, [f"{unique}-t"]) for _ in "ab"]
        first, second = [await r.check_once() for r in replicas]
    finally:
        await js.purge_stream("DLQ", subject=f"dlq.{unique}-t.>")
    [(alert, ack_a)] = first
    [(_, ack_b)] = second
    assert (alert.name, alert.details) == ("dlq_backlog", {"messages": held + 1, "threshold": held})
    assert not ack_a.duplicate
    assert ack_b.duplicate
    assert (replicas[0].published, replicas[1].published) == (1, 0)
    stored = await js.get_last_msg("TRACKS", "tracks.alerts.dlq_backlog")
    envelope = json.loads(stored.data or b"{}")
    assert (envelope["kind"], envelope["details"]["messages"]) == ("dlq_backlog", held + 1)


async def _tracks(servers: Servers, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    urls = {"TRACKS_NATS_URL": servers.nats_url, "TRACKS_DATABASE_URL": servers.database_url}
    full = {**os.environ, **urls, **env}
    full.pop("TRACKS_LOG_LEVEL", None)
    return await asyncio.to_thread(
        subprocess.run,
        [*tracks_command(), *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_alerts_check_cli_exits_3_when_an_alert_fires(
    servers: Servers, migrated: None, js: JetStreamContext, unique: str
) -> None:
    """``tracks alerts check`` prints what fires and exits 3; with nothing to report it exits 0;
    a bad threshold is one error line, exit 1."""
    held = int((await js.stream_info("DLQ")).state.messages)
    await js.publish(f"dlq.{unique}-t.x", b"{}")
    try:
        fired = await _tracks(
            servers, "alerts", "check", "--track", f"{unique}-t", TRACKS_ALERT_DLQ_THRESHOLD=str(held)
        )
    finally:
        await js.purge_stream("DLQ", subject=f"dlq.{unique}-t.>")
    assert fired.returncode == 3, fired
    assert fired.stdout.startswith(f"ALERT dlq_backlog: the DLQ stream holds {held + 1} dead letters")
    quiet = await _tracks(
        servers, "alerts", "check", "--track", f"{unique}-t", TRACKS_ALERT_DLQ_THRESHOLD=NEVER
    )
    assert (quiet.returncode, quiet.stdout) == (0, ""), quiet
    assert quiet.stderr.startswith("ok: ")
    bad = await _tracks(servers, "alerts", "check", TRACKS_ALERT_FAILURE_RATE="2")
    assert bad.returncode == 1
    [line] = bad.stderr.strip().splitlines()
    assert "TRACKS_ALERT_FAILURE_RATE" in line


def test_alert_settings_refuse_bad_values() -> None:
    with pytest.raises(SettingsError, match="TRACKS_ALERT_MIN_EVENTS"):
        load_alert_settings(min_events=0)
